"""Headless Chromium for the browser tests: the fixtures (a pytest plugin, registered in conftest.py)
and the helpers that drive the chat widget."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Start Playwright's driver (bundled in its wheel; it downloads nothing)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser there is a broken setup
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Launch Debian's Chromium once for the module."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """Open a desktop-sized page in a fresh context: empty sessionStorage, no cache."""
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def send(page: Page, text: str) -> None:
    """Type a message and press Enter."""
    box = page.get_by_role("textbox")
    box.fill(text)
    box.press("Enter")


def bot_bubbles(page: Page):
    return page.locator(".cb-log .cb-row-bot:not(.cb-welcome) .cb-bubble")


def user_bubbles(page: Page):
    return page.locator(".cb-log .cb-row-user .cb-bubble")


def texts(locator) -> list[str]:
    """Return the bubbles' text without the prefix that only screen readers hear."""
    prefixes = ("The bot said: ", "You said: ")
    return [
        next((text.removeprefix(p) for p in prefixes if text.startswith(p)), text)
        for text in locator.all_text_contents()
    ]


def wait_for_answers(page: Page, count: int) -> list[str]:
    """Wait until the bot has answered ``count`` times and return its answers."""
    expect(bot_bubbles(page)).to_have_count(count)
    return texts(bot_bubbles(page))
