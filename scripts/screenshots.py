"""Take the README's screenshots of the chat page, at desktop and phone sizes, in headless Chromium.

Starts gunicorn with a trained model on a free loopback port, has a short conversation on the
page at each size, and saves docs/chat-desktop.png and docs/chat-phone.png. Run it with
``make screenshots`` (``python -m scripts.screenshots`` from the repository root, so that it finds
tests/harness.py); it needs Debian's chromium and the dev requirements (playwright).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.harness import ROOT, Gunicorn, HarnessError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CONVERSATION = ["Hello", "What can you do?"]


def converse(page: Page, messages: list[str]) -> None:
    """Send each message and wait for its answer."""
    box = page.get_by_role("textbox")
    answers = page.locator(".cb-log .cb-row-bot:not(.cb-welcome)")
    for count, message in enumerate(messages, start=1):
        box.fill(message)
        box.press("Enter")
        expect(answers).to_have_count(count)
    expect(page.get_by_role("status")).to_be_hidden()


def take_screenshots(url: str, out: Path) -> list[Path]:
    """Save one screenshot of the page per size and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, viewport in SIZES.items():
                phone = name == "phone"
                context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
                page = context.new_page()
                page.goto(f"{url}/")
                converse(page, CONVERSATION)
                page.get_by_role("textbox").blur()  # no focus ring or blinking caret in the picture
                path = out / f"chat-{name}.png"
                page.screenshot(path=path)
                paths.append(path)
                context.close()
        finally:
            browser.close()
    return paths


def main() -> int:
    """Parse the arguments, serve the model and take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "chatbot_model.h5")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    try:
        server = Gunicorn(args.model).start()
    except HarnessError as exc:
        sys.exit(f"error: {exc}")
    with server:
        for path in take_screenshots(server.url, args.out):
            print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
