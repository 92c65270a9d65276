"""The chat page and the widget's static files, through the Flask test client."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import app as app_package

STATIC = Path(app_package.__file__).parent / "static"
WIDGET_ORIGIN = "http://127.0.0.1:8001"  # allowed by the ``app`` fixture


def test_chat_page_loads_the_widget_inline(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<link rel="stylesheet" href="/static/chat.css">' in html
    widget = re.search(r"<script ([^>]*)></script>", html)
    assert widget is not None
    assert 'src="/static/widget.js"' in widget.group(1)
    assert 'data-mode="inline"' in widget.group(1) and 'data-container="chat"' in widget.group(1)
    assert 'id="chat"' in html
    assert "<title>Chat assistant</title>" in html


def test_chat_page_runs_no_inline_script(client) -> None:
    response = client.get("/")
    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.DOTALL)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers either
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/static/widget.js", "text/javascript"),
        ("/static/widget.css", "text/css"),
        ("/static/chat.css", "text/css"),
    ],
)
def test_static_files_are_served(client, path: str, mimetype: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    response.close()


def test_widget_never_writes_html() -> None:
    widget = (STATIC / "widget.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("):
        assert sink not in widget, sink
    assert "textContent" in widget


def test_widget_preflight_allows_its_json_post(client) -> None:
    preflight = client.options(
        "/api/v1/chat",
        headers={
            "Origin": WIDGET_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == WIDGET_ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = client.post("/api/v1/chat", json={"message": "hello"}, headers={"Origin": WIDGET_ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == WIDGET_ORIGIN
    assert "Origin" in answer.headers["Vary"]


def test_disallowed_origin_gets_no_cors_headers_on_preflight(client) -> None:
    preflight = client.options(
        "/api/v1/chat",
        headers={"Origin": "http://127.0.0.1:9999", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Headers" not in preflight.headers


@pytest.mark.slow  # trains the German bot
def test_chat_page_speaks_the_bots_language(german_model_path) -> None:
    import json

    from app import create_app
    from chatbot.classifier.bundle import Bundle
    from chatbot.classifier.ranker import Ranker
    from chatbot.dialogue.decision import Dialogue

    dialogue = Dialogue(Ranker.from_bundle(Bundle.load(german_model_path)), threshold=0.5)
    html = create_app({"TESTING": True}, dialogue=dialogue).test_client().get("/").get_data(as_text=True)
    assert '<html lang="de">' in html and "<title>Hilfe-Chat</title>" in html
    widget = re.search(r"<script ([^>]*)></script>", html).group(1)
    assert 'data-lang="de"' in widget
    strings = json.loads(re.search(r"data-strings='([^']*)'", widget).group(1))
    assert strings["placeholder"] == "Nachricht eingeben…" and strings["retry"] == "Nochmal versuchen"


def test_chat_page_of_an_english_bot_has_english_defaults(client) -> None:
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en">' in html and "data-strings='{}'" in html
