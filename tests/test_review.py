"""The review inbox: grouping, decisions and figures, in the library, the terminal and /admin/review."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from app import create_app
from chatbot.data.intents import load_intents
from chatbot.dialogue.decision import Dialogue
from chatbot.learning import review
from chatbot.learning.message_log import ConversationStore, utc_now
from tests.support import TINY_INTENTS, run_cli, write_json

TOKEN = "review-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def logged(
    text: str, *, fallback: bool = True, confidence: float = 0.3, days_ago: float = 0, intent: str = "order"
) -> dict:
    """Return a conversation-log row."""
    return {
        "created_at": utc_now() - dt.timedelta(days=days_ago),
        "endpoint": "/api/v1/chat",
        "session_id": None,
        "text": text,
        "intent": intent,
        "confidence": confidence,
        "ranking": json.dumps([[intent, confidence]]),
        "fallback": fallback,
        "answer_intent": "fallback" if fallback else intent,
        "model": "m",
        "latency_ms": 1.0,
    }


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    """Return a log holding near-duplicate failures, a confident answer and an old failure."""
    store = ConversationStore(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    store.migrate()
    store.insert(
        [
            logged("do you sell gift cards", days_ago=2),
            logged("what's the weather like"),
            logged("Do you sell gift cards?", days_ago=1),
            logged("hello", fallback=False, confidence=0.99, intent="greeting"),
            logged("do you sell giftcards"),
            logged("ancient question", days_ago=90),
        ]
    )
    return store


@pytest.fixture
def intents_path(tmp_path: Path) -> Path:
    return write_json(tmp_path / "intents.json", TINY_INTENTS)


def test_inbox_groups_near_duplicates_most_frequent_first(store: ConversationStore) -> None:
    groups = review.inbox(store)
    assert [(group.text, group.count) for group in groups] == [
        ("do you sell giftcards", 3),
        ("what's the weather like", 1),
    ]
    assert groups[0].id == 1 and groups[0].fallbacks == 3  # named by its first message
    assert review.find_group(store, 1).message_ids == (5, 3, 1)


def test_decisions_edit_the_files_and_empty_the_inbox(store, intents_path: Path) -> None:
    gifts, weather = (review.find_group(store, group.id) for group in review.inbox(store))
    created = review.create_intent(
        store, gifts, intents_path, "gift_cards", "Yes, from 10 euros.", "do you sell gift cards"
    )
    assert created.startswith("created intent 'gift_cards'")
    assert (
        review.mark_out_of_scope(store, weather, intents_path)
        == "added to out_of_scope.txt (1 messages reviewed)"
    )
    assert review.inbox(store) == []
    assert load_intents(intents_path)[-1].patterns == ("do you sell gift cards",)
    assert (intents_path.parent / "out_of_scope.txt").read_text() == "what's the weather like\n"
    assert {row["review"] for row in store.recent()} >= {"intent:gift_cards", "out_of_scope"}


def test_stats_give_the_rate_per_day_and_top_intents(store) -> None:
    figures = review.stats(store)
    assert [day["messages"] for day in figures["fallback_rate_per_day"]] == [1, 1, 3]
    assert figures["fallback_rate_per_day"][-1]["rate"] == pytest.approx(2 / 3)
    assert figures["top_intents"]["7d"] == [
        {"intent": "fallback", "count": 4},
        {"intent": "greeting", "count": 1},
    ]


@pytest.fixture
def review_client(dialogue: Dialogue, store: ConversationStore, intents_path: Path):
    app = create_app(
        {
            "TESTING": True,
            "RATE_LIMIT": None,
            "ADMIN_TOKEN": TOKEN,
            "DATABASE_URL": store.url,
            "DATA_PATH": str(intents_path),
        },
        dialogue=dialogue,
    )
    return app.test_client()


def test_page_has_no_data_and_the_strict_policy(review_client) -> None:
    page = review_client.get("/admin/review")
    assert page.status_code == 200 and "gift" not in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "img-src 'self' data:" in policy and "<script>" not in page.text
    assert '<script src="/static/review.js"' in page.text


def test_data_needs_the_token(review_client) -> None:
    assert review_client.get("/admin/review/inbox").status_code == 401
    assert review_client.post("/admin/review/groups/1", json={"action": "out_of_scope"}).status_code == 401


def test_page_is_hidden_without_an_admin_token(dialogue: Dialogue) -> None:
    client = create_app({"TESTING": True, "RATE_LIMIT": None}, dialogue=dialogue).test_client()
    assert client.get("/admin/review").status_code == 404


def test_inbox_stats_and_a_decision_over_http(review_client, intents_path: Path) -> None:
    inbox = review_client.get("/admin/review/inbox", headers=AUTH).json
    assert [group["count"] for group in inbox["groups"]] == [3, 1] and "order" in inbox["intents"]
    stats = review_client.get("/admin/review/stats", headers=AUTH).json
    svg = base64.b64decode(stats["charts"]["top_intents_7d"].removeprefix("data:image/svg+xml;base64,"))
    assert svg.startswith(b"<svg") and b">fallback</text>" in svg
    decided = review_client.post(
        "/admin/review/groups/1",
        json={"action": "assign", "intent": "order", "phrase": "do you sell gift cards"},
        headers=AUTH,
    )
    assert decided.status_code == 200, decided.json
    assert (
        "do you sell gift cards" in next(i for i in load_intents(intents_path) if i.tag == "order").patterns
    )
    again = review_client.post("/admin/review/groups/1", json={"action": "out_of_scope"}, headers=AUTH)
    assert again.status_code == 422 and "no group 1 in the inbox" in again.json["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "assign", "intent": "nope"}, "intent 'nope' does not exist"),
        ({"action": "assign", "intent": "order", "phrase": "<img src=x onerror=alert(1)>"}, "contains HTML"),
        ({"action": "assign", "intent": "order", "phrase": "x" * 10_000}, "the limit is 500"),
        (
            {"action": "assign", "intent": "greeting", "phrase": "where is my order"},
            "already a phrase of intent 'order'",
        ),
        ({"action": "rename"}, '"action" must be one of'),
    ],
)
def test_bad_decisions_get_a_clear_error_and_leave_the_file(
    review_client, intents_path: Path, body, message
) -> None:
    before = intents_path.read_bytes()
    response = review_client.post("/admin/review/groups/1", json=body, headers=AUTH)
    assert response.status_code == 422 and message in response.json["error"]["message"]
    assert intents_path.read_bytes() == before


@pytest.mark.slow
def test_review_in_the_terminal(store: ConversationStore, intents_path: Path) -> None:
    common = ["--database", store.url, "--data", str(intents_path)]
    listed = run_cli("review", *common)
    assert listed.returncode == 0 and "do you sell giftcards" in listed.stdout.splitlines()[1]
    stats = run_cli("review", *common, "--stats")
    assert stats.returncode == 0 and "top intents, last 7 days" in stats.stdout
    refused = run_cli("review", *common, "--assign", "1", "nope")
    assert refused.returncode == 2 and "intent 'nope' does not exist" in refused.stderr
    done = run_cli("review", *common, "--assign", "1", "order")
    assert done.returncode == 0 and "added 'do you sell giftcards' to intent 'order'" in done.stdout
    assert "do you sell giftcards" not in run_cli("review", *common).stdout


def test_messages_past_retention_are_deleted_and_never_served(
    dialogue: Dialogue, store: ConversationStore, intents_path: Path
) -> None:
    settings = {"TESTING": True, "RATE_LIMIT": None, "ADMIN_TOKEN": TOKEN, "CONVERSATION_LOG": False}
    app = create_app(
        settings | {"DATABASE_URL": store.url, "DATA_PATH": str(intents_path), "LOG_RETENTION_DAYS": 30},
        dialogue=dialogue,
    )
    inbox = app.test_client().get("/admin/review/inbox?days=3650", headers=AUTH)
    assert inbox.status_code == 200
    assert "ancient question" not in {group["text"] for group in inbox.json["groups"]}
    assert "ancient question" not in {row["text"] for row in store.recent()}  # the log is off: no writer


def test_storage_that_cannot_be_written_is_a_clear_503_and_counted(
    dialogue: Dialogue, tmp_path: Path, intents_path: Path
) -> None:
    blocker = tmp_path / "read-only"  # a file where the database's folder should be: like EROFS, an OSError
    blocker.write_text("")
    app = create_app(
        {
            "TESTING": True,
            "RATE_LIMIT": None,
            "ADMIN_TOKEN": TOKEN,
            "CONVERSATION_LOG": False,
            "DATABASE_URL": f"sqlite:///{blocker / 'log.sqlite3'}",
            "DATA_PATH": str(intents_path),
        },
        dialogue=dialogue,
    )
    client = app.test_client()
    for response in (
        client.get("/admin/review/inbox", headers=AUTH),
        client.post("/admin/review/groups/1", json={"action": "out_of_scope"}, headers=AUTH),
    ):
        assert response.status_code == 503, response.text
        assert response.json["error"]["code"] == "storage_unavailable"
        assert "writable storage" in response.json["error"]["message"]
    assert 'chatbot_review_failures_total{reason="storage"} 2.0' in client.get("/metrics").text
