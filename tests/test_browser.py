"""The chat page and the embeddable widget in headless Chromium, against real gunicorn servers.

Other sites are played by small static servers on other loopback ports: a page there is a
different origin, so the browser applies CORS exactly as it would for a real embedding site.
"""

from __future__ import annotations

import functools
import html
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from playwright.sync_api import Browser, Page, Route, expect

from chatbot.classifier.config import ModelConfig
from chatbot.data.builtin_entities import display_value
from chatbot.data.intents import load_intents, validate_intents
from tests.browser import bot_bubbles, send, texts, user_bubbles, wait_for_answers
from tests.harness import ThreadedHTTPServer, free_port
from tests.support import DEFAULT_INTENTS, GERMAN_INTENTS, ROOT, OrderBot, Server, running_servers

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}
PAGE_TITLE = "Chat assistant"
ADMIN_TOKEN = "browser-admin-token-0123456789"
WIDGET = ROOT / "app" / "static"
XSS = '<img src=x onerror="window.__xss=1">'
XSS_INTENTS = {
    "intents": [
        {
            "tag": "greeting",
            "patterns": ["hi", "hello", "hey there", "good morning", "hello bot"],
            "responses": [XSS],
            "quick_replies": ["<b>bold</b>"],
        },
        {
            "tag": "goodbye",
            "patterns": ["bye", "goodbye", "see you later", "cya", "talk to you soon"],
            "responses": ["Bye!"],
        },
    ]
}
LEGACY_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Legacy client</title><script src="jquery.min.js"></script></head>
<body>
<p id="answer">waiting</p>
<script>
var text = "Hello";
$.ajax({url: "BOT_URL/predict", type: 'POST', contentType: 'text/plain', data: '{"data":"'+text+'"}',
        success: function (response) { $("#answer").text(response); },
        error: function () { $("#answer").text("no answer"); }});
</script>
</body>
</html>
"""
EMBED_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Another site</title>
<style>body {{ font-family: serif; }} button {{ background: red; }} div {{ padding: 7px; }}</style></head>
<body>
<h1>A site that embeds the chat</h1>
<p>Some content of the host page.</p>
<script src="{script}" {attributes} defer></script>
</body>
</html>
"""


def order_question() -> str:
    """Return the question the default bot asks for a missing order number."""
    (intent,) = [intent for intent in load_intents(DEFAULT_INTENTS) if intent.tag == "order_status"]
    return intent.require[0].question


def responses_of(tag: str) -> set[str]:
    """Return the default bot's responses of one intent."""
    return {
        response
        for intent in load_intents(DEFAULT_INTENTS)
        if intent.tag == tag
        for response in intent.responses
    }


# ---- servers ---------------------------------------------------------------------------------


class QuietHandler(SimpleHTTPRequestHandler):
    """Serve files from a folder without logging every request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class StaticSite(ThreadedHTTPServer):
    """Another website: a folder served over HTTP on its own loopback port, so its own origin."""

    def __init__(self, root: Path) -> None:
        super().__init__(functools.partial(QuietHandler, directory=root))
        self.root = root

    def page(self, name: str, html: str) -> str:
        """Publish a page and return its URL."""
        (self.root / name).write_text(html, encoding="utf-8")
        return f"{self.url}/{name}"

    def embed(self, name: str, script: str, **data: str) -> str:
        """Publish a page that embeds the widget with one script tag, and return its URL."""
        attributes = " ".join(f'data-{key.replace("_", "-")}="{value}"' for key, value in data.items())
        return self.page(name, EMBED_PAGE.format(script=script, attributes=attributes))


def jquery_site(tmp_path_factory: pytest.TempPathFactory, name: str) -> StaticSite:
    """Return a static site that carries jQuery from the xstatic package (not yet serving)."""
    import xstatic.pkg.jquery

    root = tmp_path_factory.mktemp(name)
    shutil.copy(Path(xstatic.pkg.jquery.BASE_DIR) / "jquery.min.js", root / "jquery.min.js")
    return StaticSite(root)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """Serve a site whose origin the bot allows."""
    with jquery_site(tmp_path_factory, "site") as site:
        yield site


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    """Serve a site whose origin the bot does not allow."""
    with jquery_site(tmp_path_factory, "stranger") as site:
        yield site


@pytest.fixture(scope="module")
def module_servers() -> Iterator:
    """Start gunicorn servers shared by the tests of this module, and stop them at its end."""
    with running_servers() as start:
        yield start


@pytest.fixture(scope="module")
def bot(module_servers, order_bot: OrderBot, site: StaticSite) -> Server:
    """Serve the default bot and its order service, allowing cross-origin requests from ``site`` only."""
    env = {**order_bot.env, "CHATBOT_CORS_ORIGINS": site.url, "CHATBOT_ADMIN_TOKEN": ADMIN_TOKEN}
    return module_servers(order_bot.model_path, env)


@pytest.fixture(scope="module")
def xss_bot(module_servers, site: StaticSite, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """Serve a bot whose answer and quick reply are HTML, allowing ``site``."""
    from chatbot.training.train import train

    path = tmp_path_factory.mktemp("xss") / "model.h5"
    train(validate_intents(XSS_INTENTS), ModelConfig(epochs=200, seed=7)).save(path)
    return module_servers(path, {"CHATBOT_CORS_ORIGINS": site.url})


@pytest.fixture(scope="module")
def german_bot(module_servers, german_model_path: Path) -> Server:
    """Serve the German bot (conftest.GERMAN_INTENTS), whose widget texts are German."""
    return module_servers(german_model_path)


# ---- browser ---------------------------------------------------------------------------------


# ---- the chat page ---------------------------------------------------------------------------


def test_chat_page_answers_a_greeting(page: Page, bot: Server) -> None:
    page.goto(bot.url + "/")
    expect(page).to_have_title(PAGE_TITLE)
    expect(page.get_by_role("region", name=PAGE_TITLE)).to_be_visible()
    expect(page.get_by_role("log", name="Conversation")).to_have_attribute("aria-live", "polite")
    box = page.get_by_label(f"Message to {PAGE_TITLE}")
    expect(box).to_be_visible()
    expect(page.locator(".cb-welcome")).to_be_visible()
    send(page, "Hello")
    assert texts(user_bubbles(page)) == ["Hello"]
    assert wait_for_answers(page, 1)[0] in responses_of("greeting")
    expect(box).to_have_value("")
    expect(page.get_by_role("status")).to_be_hidden()


def test_typing_indicator_shows_while_waiting_and_one_message_at_a_time(page: Page, bot: Server) -> None:
    held: list[Route] = []
    page.route("**/api/v1/chat", lambda route: held.append(route))  # held until the test lets it go
    page.goto(bot.url + "/")
    send(page, "Hello")
    typing = page.get_by_role("status")
    expect(typing).to_be_visible()
    expect(typing).to_contain_text("The bot is typing")
    expect(page.get_by_role("button", name="Send")).to_be_disabled()
    send(page, "Are you there?")  # Enter while an answer is on its way sends nothing
    expect(page.get_by_role("textbox")).to_have_value("Are you there?")
    assert len(held) == 1
    held[0].continue_()
    assert wait_for_answers(page, 1)[0] in responses_of("greeting")
    expect(typing).to_be_hidden()
    assert texts(user_bubbles(page)) == ["Hello"]


def test_empty_text_is_not_sent(page: Page, bot: Server) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(bot.url + "/")
    send_button = page.get_by_role("button", name="Send")
    expect(send_button).to_be_disabled()
    for text in ("", "   ", "\t"):
        send(page, text)
    page.get_by_role("textbox").fill("  ")
    expect(send_button).to_be_disabled()
    expect(user_bubbles(page)).to_have_count(0)
    assert not [url for url in requests if url.endswith("/api/v1/chat")]


def test_context_survives_a_reload(page: Page, bot: Server) -> None:
    page.goto(bot.url + "/")
    send(page, "Where is my order?")
    assert wait_for_answers(page, 1)[0] == order_question()
    page.reload()
    expect(user_bubbles(page)).to_have_count(1)
    assert texts(user_bubbles(page)) == ["Where is my order?"]
    assert wait_for_answers(page, 1)[0] == order_question()
    send(page, "It is 30917")  # the number the bot asked for, in the same session: looked up
    assert wait_for_answers(page, 2)[1].startswith("Order 30917 ")
    stored = page.evaluate("JSON.parse(sessionStorage.getItem('chatbot-widget:' + location.origin))")
    assert len(stored["sessionId"]) == 32
    assert [message["role"] for message in stored["messages"]] == ["user", "bot", "user", "bot"]


def test_quick_replies_send_their_label(page: Page, bot: Server) -> None:
    page.goto(bot.url + "/")
    send(page, "What can you do?")
    assert wait_for_answers(page, 1)[0] in responses_of("help")
    group = page.get_by_role("group", name="Suggested replies")
    expect(group.get_by_role("button")).to_have_text(
        ["Shipping", "Returns", "Order status", "Talk to a person"]
    )
    page.reload()  # the buttons come back with the transcript
    group.get_by_role("button", name="Shipping").click()
    assert texts(user_bubbles(page)) == ["What can you do?", "Shipping"]
    assert wait_for_answers(page, 2)[1] in responses_of("shipping")
    expect(group).to_be_hidden()  # the shipping intent offers none
    send(page, "blah blah blah")
    assert wait_for_answers(page, 3)[2] in responses_of("fallback")
    group.get_by_role("button", name="Talk to a person").press("Enter")  # keyboard works too
    assert wait_for_answers(page, 4)[3] in responses_of("human_handoff")


def test_order_lookup_and_handoff_in_the_widget(page: Page, bot: Server) -> None:
    page.goto(bot.url + "/")
    send(page, "where is my order?")
    assert wait_for_answers(page, 1)[0] == order_question()
    send(page, "it's ACM-20931")  # the example order service's answer, shown like any reply
    assert wait_for_answers(page, 2)[1].startswith("Order ACM-20931 ")
    notice = page.locator(".cb-handoff")
    expect(notice).to_be_hidden()
    page.get_by_role("group", name="Suggested replies").get_by_role("button", name="Talk to a person").click()
    assert wait_for_answers(page, 3)[2] in responses_of("human_handoff")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("A person from our team will answer here")
    send(page, "my parcel is damaged")  # a person answers now: no bot bubble
    expect(user_bubbles(page)).to_have_count(4)
    expect(page.locator(".cb-typing")).to_be_hidden()
    expect(bot_bubbles(page)).to_have_count(3)
    page.reload()
    expect(notice).to_be_visible()  # the handoff state survives a reload

    session = page.evaluate(
        "JSON.parse(sessionStorage.getItem('chatbot-widget:' + location.origin)).sessionId"
    )
    released = requests.post(
        f"{bot.url}/admin/sessions/{session}/release",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert released.status_code == 200, released.text
    send(page, "Hello")
    assert wait_for_answers(page, 4)[3] in responses_of("greeting")
    expect(notice).to_be_hidden()


def slot_question(tag: str) -> str:
    """Return the question the default bot asks for an intent's first missing slot."""
    (intent,) = [intent for intent in load_intents(DEFAULT_INTENTS) if intent.tag == tag]
    return intent.require[0].question


def test_delivery_date_and_call_back_number_in_the_widget(page: Page, bot: Server) -> None:
    page.goto(bot.url + "/")
    send(page, "I'd like to choose my delivery date")
    assert wait_for_answers(page, 1)[0] == slot_question("delivery_date")
    send(page, "whenever")  # no date in it: the bot asks again rather than guessing
    assert wait_for_answers(page, 2)[1] == slot_question("delivery_date")
    send(page, "next Friday")
    # The widget sends the browser's time zone: "next Friday" is read there, not in the bot's.
    zone = ZoneInfo(page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))
    today = datetime.now(zone).date()
    friday = today + timedelta(days=(4 - today.weekday()) % 7 or 7)
    said = display_value("date", friday.isoformat(), "en")  # "Friday, 4 December 2026"
    answer = wait_for_answers(page, 3)[2]
    assert said in answer, answer
    send(page, "Please call me back")
    assert wait_for_answers(page, 4)[3] == slot_question("callback")
    send(page, "sure, it's (212) 555-0147")
    assert wait_for_answers(page, 5)[4] in {
        response.replace("{phone}", "+12125550147") for response in responses_of("callback")
    }


def test_the_widget_sends_the_browsers_time_zone(browser: Browser, bot: Server) -> None:
    """A customer far from the bot's New York: "tomorrow" is the customer's tomorrow."""
    bot_zone = ZoneInfo("America/New_York")
    # Of two zones 25 hours apart, one always has another date than New York has.
    zone = next(
        name
        for name in ("Pacific/Kiritimati", "Pacific/Pago_Pago")
        if datetime.now(ZoneInfo(name)).date() != datetime.now(bot_zone).date()
    )
    context = browser.new_context(timezone_id=zone)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(bot.url + "/")
        send(page, "I'd like to choose my delivery date")
        assert wait_for_answers(page, 1)[0] == slot_question("delivery_date")
        send(page, "tomorrow")
        answer = wait_for_answers(page, 2)[1]
        theirs = display_value(
            "date", (datetime.now(ZoneInfo(zone)) + timedelta(days=1)).date().isoformat(), "en"
        )
        ours = display_value("date", (datetime.now(bot_zone) + timedelta(days=1)).date().isoformat(), "en")
        assert theirs in answer and ours not in answer, (zone, answer)
    finally:
        context.close()


def test_a_browser_zone_the_server_does_not_know_does_not_stop_the_chat(page: Page, bot: Server) -> None:
    """The widget asks again without the zone, and the bot reads dates in its own."""
    page.add_init_script(
        "const resolved = Intl.DateTimeFormat.prototype.resolvedOptions;"
        "Intl.DateTimeFormat.prototype.resolvedOptions = function () {"
        "  return { ...resolved.call(this), timeZone: 'Mars/Olympus_Mons' }; };"
    )
    sent = []
    page.on(
        "request",
        lambda request: sent.append(request.post_data_json) if "/api/v1/chat" in request.url else None,
    )
    page.goto(bot.url + "/")
    send(page, "I'd like to choose my delivery date")
    assert wait_for_answers(page, 1)[0] == slot_question("delivery_date")
    assert [body.get("time_zone") for body in sent] == ["Mars/Olympus_Mons", None]
    send(page, "tomorrow")
    tomorrow = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=1)).date()
    assert display_value("date", tomorrow.isoformat(), "en") in wait_for_answers(page, 2)[1]
    assert "time_zone" not in sent[-1]  # not sent again once refused


@pytest.mark.parametrize("where", ["chat page", "other site"])
def test_bot_text_is_shown_as_text_and_runs_nothing(
    page: Page, xss_bot: Server, site: StaticSite, where
) -> None:
    if where == "chat page":  # this page also has a Content-Security-Policy: the other site has none
        url = xss_bot.url + "/"
    else:
        url = site.embed("xss.html", f"{xss_bot.url}/static/widget.js", title="Chat")
    page.goto(url)
    if where == "other site":
        page.get_by_role("button", name="Chat", exact=True).click()
    for attempt in range(2):
        if attempt == 0:
            send(page, "hello")
        else:
            page.reload()
            if where == "other site":
                expect(page.get_by_role("dialog")).to_be_visible()  # it stays open across a reload
        assert wait_for_answers(page, 1) == [XSS]
        expect(page.get_by_text(XSS)).to_be_visible()
        expect(page.get_by_role("button", name="<b>bold</b>")).to_be_visible()
        assert page.locator("img, b").count() == 0  # no element was made from bot text
        assert page.evaluate("window.__xss") is None


# ---- other sites: the embed snippet and the original jQuery client ---------------------------


@pytest.mark.parametrize(("allowed", "answered"), [(True, True), (False, False)])
def test_original_jquery_snippet_from_another_origin(
    page: Page, bot: Server, site: StaticSite, stranger: StaticSite, allowed: bool, answered: bool
) -> None:
    origin = site if allowed else stranger
    page.goto(origin.page("legacy.html", LEGACY_PAGE.replace("BOT_URL", bot.url)))
    answer = page.locator("#answer")
    expect(answer).not_to_have_text("waiting")
    if answered:
        assert answer.text_content() in responses_of("greeting")
    else:
        expect(answer).to_have_text("no answer")


def test_widget_embedded_with_one_script_tag(page: Page, bot: Server, site: StaticSite) -> None:
    page.goto(site.embed("embed.html", f"{bot.url}/static/widget.js", title="Acme help"))
    launcher = page.get_by_role("button", name="Acme help")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    dialog = page.get_by_role("dialog", name="Acme help")
    expect(dialog).to_be_hidden()
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(dialog).to_be_visible()
    box = page.get_by_label("Message to Acme help")
    expect(box).to_be_focused()
    box.fill("Hello")
    box.press("Enter")
    assert wait_for_answers(page, 1)[0] in responses_of("greeting")
    box.press("Escape")
    expect(dialog).to_be_hidden()
    expect(launcher).to_be_focused()
    page.keyboard.press("Enter")  # the launcher opens again from the keyboard, conversation intact
    expect(dialog).to_be_visible()
    assert texts(user_bubbles(page)) == ["Hello"]
    # The host page's CSS stays out of the widget: its buttons are not red, its divs not padded.
    assert launcher.evaluate("e => getComputedStyle(e).backgroundColor") != "rgb(255, 0, 0)"
    page.get_by_role("button", name="Close chat").click()
    expect(dialog).to_be_hidden()


def test_widget_on_a_site_the_bot_does_not_allow_says_so(
    page: Page, bot: Server, stranger: StaticSite
) -> None:
    page.goto(stranger.embed("embed.html", f"{bot.url}/static/widget.js", title="Acme help"))
    page.get_by_role("button", name="Acme help").click()
    send(page, "Hello")
    expect(page.get_by_role("alert")).to_contain_text("Can't reach the chat service")
    expect(bot_bubbles(page)).to_have_count(0)


# ---- failures --------------------------------------------------------------------------------


def test_server_down_message(page: Page, site: StaticSite) -> None:
    # No build step: the widget's two files work from any static host, here pointed at a closed port.
    for name in ("widget.js", "widget.css"):
        shutil.copy(WIDGET / name, site.root / name)
    closed = f"http://127.0.0.1:{free_port()}"
    page.goto(site.embed("down.html", "widget.js", bot_url=closed, title="Help"))
    page.get_by_role("button", name="Help").click()
    send(page, "Hello")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Can't reach the chat service right now")
    expect(alert.get_by_role("button", name="Try again")).to_be_visible()
    assert texts(user_bubbles(page)) == ["Hello"]
    expect(page.get_by_role("status")).to_be_hidden()
    alert.get_by_role("button", name="Try again").click()  # still down: the message comes back
    expect(page.get_by_role("alert")).to_have_count(1)
    assert texts(user_bubbles(page)) == ["Hello"]


def test_retry_after_errors(page: Page, bot: Server) -> None:
    failures = iter(["abort", "500"])

    def fail_twice(route: Route) -> None:
        failure = next(failures, None)
        if failure == "abort":
            route.abort("connectionrefused")
        elif failure == "500":
            route.fulfill(status=500, content_type="application/json", body='{"error": {}}')
        else:
            route.continue_()

    page.route("**/api/v1/chat", fail_twice)
    page.goto(bot.url + "/")
    send(page, "Hello")
    expect(page.get_by_role("alert")).to_contain_text("Can't reach the chat service")
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("alert")).to_contain_text("had a problem (error 500)")
    page.get_by_role("button", name="Try again").click()
    assert wait_for_answers(page, 1)[0] in responses_of("greeting")
    expect(page.get_by_role("alert")).to_have_count(0)
    assert texts(user_bubbles(page)) == ["Hello"]


def test_an_answer_that_never_comes_times_out(page: Page, bot: Server) -> None:
    page.clock.install()  # the page's timers run on a clock the test moves
    held: list[Route] = []
    page.route("**/api/v1/chat", lambda route: held.append(route))
    page.goto(bot.url + "/")
    send(page, "Hello")
    expect(page.get_by_role("status")).to_be_visible()
    page.clock.run_for(9_000)
    expect(page.get_by_role("alert")).to_have_count(0)
    page.clock.run_for(2_000)  # past the widget's 10 s limit
    expect(page.get_by_role("alert")).to_contain_text("took too long to answer")
    expect(page.get_by_role("status")).to_be_hidden()
    page.unroute("**/api/v1/chat")
    page.get_by_role("button", name="Try again").click()
    assert wait_for_answers(page, 1)[0] in responses_of("greeting")


def test_server_error_message_is_shown(page: Page, serve, tiny_model_path: Path) -> None:
    server = serve(tiny_model_path, {"CHATBOT_MAX_MESSAGE_CHARS": "10"})
    page.goto(server.url + "/")
    send(page, "hello there, bot")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text('"message" has 16 characters; the limit is 10')
    expect(alert.get_by_role("button")).to_have_count(0)  # the same text would fail again
    expect(page.get_by_role("textbox")).to_have_value("hello there, bot")  # to shorten it
    send(page, "hello")
    expect(alert).to_have_count(0)
    assert wait_for_answers(page, 1)[0] in {"Hello!", "Hi there."}


# ---- layout ----------------------------------------------------------------------------------


def test_phone_layout(browser: Browser, bot: Server, site: StaticSite) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(bot.url + "/")
        panel = page.get_by_role("region", name=PAGE_TITLE)
        expect(panel).to_be_visible()
        assert panel.bounding_box() == {"x": 0, "y": 0, **PHONE}
        page.goto(site.embed("phone.html", f"{bot.url}/static/widget.js", title="Acme help"))
        page.get_by_role("button", name="Acme help").click()
        dialog = page.get_by_role("dialog", name="Acme help")
        expect(dialog).to_be_visible()
        assert dialog.bounding_box() == {"x": 0, "y": 0, **PHONE}  # full screen on a phone
        page.get_by_role("button", name="Close chat").click()
        expect(page.get_by_role("button", name="Acme help")).to_be_visible()
    finally:
        context.close()


# ---- other languages -------------------------------------------------------------------------


def test_german_bot_page_speaks_german_and_an_arabic_reply_reads_right_to_left(
    page: Page, german_bot: Server
) -> None:
    german = GERMAN_INTENTS["widget"]
    failures = iter(["abort"])
    page.route(
        "**/api/v1/chat",
        lambda route: route.abort("connectionrefused") if next(failures, None) else route.continue_(),
    )
    page.goto(german_bot.url + "/")
    expect(page).to_have_title(german["title"])
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("region", name=german["title"])).to_be_visible()
    expect(page.get_by_placeholder(german["placeholder"])).to_be_visible()
    expect(page.get_by_role("button", name=german["restart"])).to_be_visible()
    expect(page.locator(".cb-welcome")).to_contain_text(german["welcome"])
    send(page, "Sag etwas auf Arabisch")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(german["error_network"])
    alert.get_by_role("button", name=german["retry"]).click()
    answer = bot_bubbles(page).first
    expect(answer).to_contain_text("مرحبا")
    assert answer.evaluate("element => getComputedStyle(element).direction") == "rtl"
    assert answer.evaluate("element => element.matches(':dir(rtl)')")
    assert user_bubbles(page).first.evaluate("element => getComputedStyle(element).direction") == "ltr"
    # Laid out right to left: the Arabic text starts at the bubble's right edge.
    text_box = answer.evaluate(
        """element => { const range = document.createRange(); range.selectNodeContents(element.lastChild);
        const text = range.getBoundingClientRect(), bubble = element.getBoundingClientRect();
        return [text.right, bubble.right - parseFloat(getComputedStyle(element).paddingRight)]; }"""
    )
    assert abs(text_box[0] - text_box[1]) < 2


def test_widget_texts_from_data_attributes(page: Page, site: StaticSite) -> None:
    for name in ("widget.js", "widget.css"):
        shutil.copy(WIDGET / name, site.root / name)
    closed = f"http://127.0.0.1:{free_port()}"
    url = site.embed(
        "french.html",
        "widget.js",
        bot_url=closed,
        title="Aide",
        lang="fr",
        placeholder="Votre message…",
        retry="Réessayer",
        error_network="Le service ne répond pas.",
        strings=html.escape('{"send": "Envoyer", "retry": "ignored: the data-retry attribute wins"}'),
    )
    page.goto(url)
    page.get_by_role("button", name="Aide").click()
    expect(page.get_by_role("dialog", name="Aide")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("button", name="Envoyer")).to_be_visible()
    page.get_by_placeholder("Votre message…").fill("Bonjour")
    page.get_by_placeholder("Votre message…").press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Le service ne répond pas.")
    expect(alert.get_by_role("button", name="Réessayer")).to_be_visible()
