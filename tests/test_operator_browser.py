"""A customer in the widget and an operator in the console, two headless Chromium contexts, against
real gunicorn: one process without Redis, and two replicas of two workers sharing a real redis-server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import DESKTOP, send, wait_for_answers
from tests.support import RedisServer, Server, record_figures, with_slots

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "operator-admin-token-0123456789"
HANDED_OVER = "A person will answer here."  # with_slots: "bye" hands over
REPLY = "Hi, I'm Alice from support. Let me check."


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Open browser contexts for a test (each its own storage, as two people) and close them after."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def new_page(browser: Browser, contexts: list[BrowserContext]) -> Page:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(10_000)
    contexts.append(context)
    return context.new_page()


@pytest.fixture(scope="module")
def handoff_model(tiny_bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_slots(tiny_bundle).save(tmp_path_factory.mktemp("handoff") / "model.h5")


def sign_in(console: Page, server: Server, name: str) -> None:
    console.goto(server.url + "/admin/inbox")
    console.get_by_label("Admin token").fill(ADMIN_TOKEN)
    console.get_by_label("Your name").fill(name)
    console.get_by_role("button", name="Open the console").click()
    expect(console.locator("#console-status")).to_have_text(f"Signed in as {name}.")


def operator_round_trip(
    customer_page: Page, customer_server: Server, console: Page, console_server: Server, figures: str
) -> None:
    """The whole story: hand over, the console sees it, claims, replies, gives back, the bot answers."""
    sign_in(console, console_server, "Alice")
    expect(console.locator("#console-empty")).to_be_visible()
    customer_page.goto(customer_server.url + "/")
    send(customer_page, "hello")
    wait_for_answers(customer_page, 1)
    send(customer_page, "bye")
    assert wait_for_answers(customer_page, 2)[1] == HANDED_OVER
    expect(customer_page.locator(".cb-handoff")).to_be_visible()

    item = console.locator(".console-item")  # appears without a reload: the console is live
    expect(item).to_have_count(1, timeout=5_000)
    expect(item).to_contain_text("web")
    expect(item).to_contain_text("waiting")
    item.locator(".console-open").click()
    expect(console.locator("#console-transcript")).to_contain_text(HANDED_OVER)
    console.get_by_role("button", name="Claim").click()
    expect(console.locator("#console-holder")).to_contain_text("claimed by Alice")

    console.get_by_label("Reply to the customer").fill(REPLY)
    console.get_by_role("button", name="Send").click()
    started = time.monotonic()
    expect(customer_page.locator(".cb-log .cb-row-bot .cb-bubble").last).to_contain_text(REPLY, timeout=5_000)
    reached_in = time.monotonic() - started
    record_figures(figures, {"operator_reply_reached_the_widget_in_s": round(reached_in, 3)})
    assert reached_in < 1.0, f"the reply took {reached_in:.2f} s to reach the widget"
    expect(console.locator("#console-transcript")).to_contain_text("Alice")

    console.get_by_role("button", name="Give back to the bot").click()
    expect(customer_page.locator(".cb-handoff")).to_be_hidden()
    expect(console.locator(".console-item")).to_have_count(0)
    send(customer_page, "hello")
    assert wait_for_answers(customer_page, 4)[3] in ("Hello!", "Hi there.")


def test_operator_answers_a_customer_in_one_process(browser: Browser, contexts, serve, handoff_model) -> None:
    server = serve(handoff_model, {"CHATBOT_ADMIN_TOKEN": ADMIN_TOKEN})
    operator_round_trip(
        new_page(browser, contexts), server, new_page(browser, contexts), server, "operator_reply_one_process"
    )


def test_operator_on_one_replica_answers_a_customer_on_another(
    browser: Browser,
    contexts,
    serve,
    handoff_model,
    tmp_path: Path,
) -> None:
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        env = {"CHATBOT_ADMIN_TOKEN": ADMIN_TOKEN, "REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "2"}
        customer_replica, operator_replica = serve(handoff_model, env), serve(handoff_model, env)
        operator_round_trip(
            new_page(browser, contexts),
            customer_replica,
            new_page(browser, contexts),
            operator_replica,
            "operator_reply_across_replicas",
        )
    finally:
        redis_server.stop()


@pytest.mark.parametrize(
    ("path", "prefix", "button"),
    [("/admin/review", "review", "Open the inbox"), ("/admin/inbox", "console", "Open the console")],
)
def test_a_refused_token_is_shown_and_forgotten_on_both_admin_pages(
    browser: Browser, contexts, serve, handoff_model, path: str, prefix: str, button: str
) -> None:
    """The sign-in both pages share (admin.js): the error in the status line, the form asked again."""
    server = serve(handoff_model, {"CHATBOT_ADMIN_TOKEN": ADMIN_TOKEN})
    page = new_page(browser, contexts)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(server.url + path)
    page.get_by_label("Admin token").fill("not-the-admin-token-0123")
    if prefix == "console":
        page.get_by_label("Your name").fill("Alice")
    page.get_by_role("button", name=button).click()
    status = page.locator(f"#{prefix}-status")
    expect(status).to_have_class(re.compile(r"\breview-error\b"))
    expect(status).not_to_be_empty()
    expect(page.locator(f"#{prefix}-login")).to_be_visible()
    expect(page.get_by_label("Admin token")).to_have_value("")  # never left in the field
    assert page.evaluate("sessionStorage.getItem('chatbot-admin-token')") is None
    assert [problem for problem in problems if "401" not in problem] == []  # no script error
