"""The operator console and the handoff inbox through an in-process app: claims, replies, giving back,
live events, the conversation log, and what a handoff does when no one is there to take it."""

from __future__ import annotations

import json
import threading
import time

import pytest

from app.handoff import UNSTAFFED_RESPONSE
from chatbot.learning.message_log import ConversationStore
from tests.harness import wait_until
from tests.support import (
    ADMIN_TOKEN,
    PlatformApi,
    WebhookServer,
    platform_config,
    post_telegram,
    rest,
    slot_bot_app,
    telegram_update,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HANDED_OVER = "A person will answer here."  # with_slots: "bye" hands over


def chat(client, message: str, session: str = "s1") -> dict:
    response = client.post("/api/v1/chat", json={"session_id": session, "message": message})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def act(client, session: str, action: str, operator: str, **fields):
    return client.post(
        f"/admin/inbox/conversations/{session}/{action}", json={"operator": operator, **fields}, headers=AUTH
    )


def test_a_handoff_with_no_one_told_says_so_and_the_bot_stays(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle, ADMIN_TOKEN=None).test_client()
    chat(client, "hello")
    answer = chat(client, "bye")
    assert (answer["response"], answer["handoff"]) == (UNSTAFFED_RESPONSE, False)
    assert chat(client, "hello")["response"] in ("Hello!", "Hi there.")  # the bot still answers
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'chatbot_handoffs_total{event="unstaffed"} 1.0' in metrics
    assert client.get("/admin/inbox").status_code == 404  # no console without the token
    assert client.get("/api/v1/sessions/s1/events").status_code == 404


def test_the_operators_hook_alone_is_someone_to_hand_over_to(tiny_bundle) -> None:
    with WebhookServer("ok") as operator:
        client = slot_bot_app(tiny_bundle, ADMIN_TOKEN=None, HANDOFF_URL=operator.url).test_client()
        assert chat(client, "bye")["handoff"] is True


def test_console_page_has_the_admin_pages_policy(tiny_bundle) -> None:
    page = slot_bot_app(tiny_bundle).test_client().get("/admin/inbox")
    assert page.status_code == 200 and b"console.js" in page.data
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_claim_reply_and_give_back(tiny_bundle, tmp_path) -> None:
    database = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    app = slot_bot_app(tiny_bundle, CONVERSATION_LOG=True, DATABASE_URL=database)
    client = app.test_client()
    assert client.get("/admin/inbox/conversations").status_code == 401
    chat(client, "hello")
    assert chat(client, "bye")["response"] == HANDED_OVER
    chat(client, "my parcel is damaged")  # while waiting: silent, but in the transcript
    listed = client.get("/admin/inbox/conversations", headers=AUTH).get_json()["conversations"]
    assert [(item["session_id"], item["channel"], item["status"]) for item in listed] == [
        ("s1", "web", "waiting")
    ]
    transcript = client.get("/admin/inbox/conversations/s1", headers=AUTH).get_json()["transcript"]
    assert [(line["author"], line["text"]) for line in transcript][-3:] == [
        ("customer", "bye"),
        ("bot", HANDED_OVER),
        ("customer", "my parcel is damaged"),
    ]

    assert act(client, "s1", "reply", "alice", text="hi").status_code == 409  # claim first
    assert act(client, "s1", "claim", "alice").get_json()["conversation"]["operator"] == "alice"
    taken = act(client, "s1", "claim", "bob")
    assert taken.status_code == 409 and "alice" in taken.get_json()["error"]["message"]
    assert act(client, "s1", "reply", "bob", text="me too").status_code == 409
    assert act(client, "s1", "release", "bob").status_code == 409
    assert act(client, "s1", "reply", "alice", text="Sorry to hear that, I'm on it.").status_code == 200
    transcript = client.get("/admin/inbox/conversations/s1", headers=AUTH).get_json()["transcript"]
    assert (transcript[-1]["author"], transcript[-1]["text"]) == (
        "operator:alice",
        "Sorry to hear that, I'm on it.",
    )

    assert act(client, "s1", "release", "alice").get_json() == {"session_id": "s1", "status": "released"}
    assert client.get("/admin/inbox/conversations", headers=AUTH).get_json()["conversations"] == []
    back = chat(client, "hello")
    assert back["handoff"] is False and back["response"] in ("Hello!", "Hi there.")
    app.extensions["conversation_log"].close()
    rows = ConversationStore(database).recent()
    operator_rows = [row for row in rows if row["intent"] == "operator"]
    assert [(row["text"], row["answer_intent"], row["session_id"]) for row in operator_rows] == [
        ("Sorry to hear that, I'm on it.", "operator:alice", "s1")
    ]
    assert all(row["confidence"] == 1.0 for row in operator_rows)  # never listed for review


@pytest.mark.parametrize(
    ("body", "status"),
    [({"operator": ""}, 422), ({"operator": "a<b>"}, 422), ({"operator": "x" * 65}, 422), ({}, 400)],
)
def test_operator_names_are_checked(tiny_bundle, body: dict, status: int) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    chat(client, "bye")
    response = client.post("/admin/inbox/conversations/s1/claim", json=body, headers=AUTH)
    assert response.status_code == status and "error" in response.get_json()


def test_unknown_conversations_and_bad_cursors(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    assert client.get("/admin/inbox/conversations/nobody", headers=AUTH).status_code == 404
    assert act(client, "nobody", "claim", "alice").status_code == 404
    assert client.get("/admin/inbox/conversations/bad id", headers=AUTH).status_code == 422
    assert client.get("/admin/inbox/events?cursor=x-y", headers=AUTH).status_code == 422


def test_the_console_hears_of_a_new_handoff_at_once(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    cursor = client.get("/admin/inbox/conversations", headers=AUTH).get_json()["cursor"]
    threading.Timer(0.3, lambda: chat(client, "bye", session="s9")).start()
    started = time.monotonic()
    changes = client.get(f"/admin/inbox/events?cursor={cursor}", headers=AUTH).get_json()
    assert time.monotonic() - started < 2.0
    assert {"type": "changed", "session_id": "s9"} in changes["events"]


def test_the_customer_stream_carries_the_reply_and_the_give_back(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    chat(client, "bye")
    act(client, "s1", "claim", "alice")
    stream = client.get("/api/v1/sessions/s1/events", buffered=False)
    assert stream.mimetype == "text/event-stream"
    chunks = iter(stream.response)
    assert next(chunks).startswith(b"retry:")

    def operator_answers() -> None:
        act(client, "s1", "reply", "alice", text="Hello, I'm Alice.")
        act(client, "s1", "release", "alice")

    threading.Timer(0.2, operator_answers).start()
    started = time.monotonic()
    events = []
    while len(events) < 2:
        chunk = next(chunks).decode()
        events += [json.loads(line[6:]) for line in chunk.splitlines() if line.startswith("data: ")]
    assert time.monotonic() - started < 1.5
    stream.close()
    assert events == [
        {"type": "reply", "text": "Hello, I'm Alice.", "author": "operator"},
        {"type": "released"},
    ]


def test_operator_replies_reach_rest_and_telegram_customers(tiny_bundle) -> None:
    with PlatformApi() as api:
        client = slot_bot_app(tiny_bundle, **platform_config(api.url)).test_client()
        assert rest(client, "ann", "bye") == [{"recipient_id": "ann", "text": HANDED_OVER}]
        act(client, "rest:ann", "claim", "alice")
        act(client, "rest:ann", "reply", "alice", text="Alice here.")
        assert rest(client, "ann", "thanks") == [{"recipient_id": "ann", "text": "Alice here."}]
        assert rest(client, "ann", "still there?") == []  # delivered once

        post_telegram(client, telegram_update(1, "bye", chat_id=77))
        act(client, "telegram:77", "claim", "alice")
        act(client, "telegram:77", "reply", "alice", text="Alice on Telegram.")
        wait_until(lambda: len(api.received) == 2, timeout=5)
    assert sorted(body["text"] for _, body, _ in api.received) == [
        "A person will answer here.",
        "Alice on Telegram.",
    ]
    assert {body["chat_id"] for _, body, _ in api.received} == {77}


def test_a_cursor_from_before_a_restart_starts_from_now() -> None:
    from app.inbox import MemoryInbox

    inbox = MemoryInbox()
    threading.Timer(0.1, lambda: inbox.publish("session:s1", {"type": "reply", "text": "hi"})).start()
    events, cursor = inbox.wait("session:s1", "500", timeout=2.0)
    assert (events, cursor) == ([("1", {"type": "reply", "text": "hi"})], "1")


def test_the_redis_inbox_gives_a_conversation_to_one_operator_and_wakes_listeners(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app.inbox import Conversation, Entry, RedisInbox
    from app.shared_redis import shared_redis
    from tests.support import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    try:
        inbox = RedisInbox(shared_redis(server.url), server.url)
        now = time.time()
        inbox.open(Conversation("s1", "telegram", "42", now, now), [Entry("customer", "help", now)])
        names = [f"operator{index}" for index in range(8)]
        with ThreadPoolExecutor(len(names)) as pool:
            holders = {
                conversation.operator
                for conversation in pool.map(lambda name: inbox.claim("s1", name), names)
            }
        assert len(holders) == 1 and holders <= set(names)  # everyone sees the same single winner
        cursor = inbox.cursor("session:s1")
        threading.Timer(0.2, lambda: inbox.publish("session:s1", {"type": "reply", "text": "hi"})).start()
        started = time.monotonic()
        events, _ = inbox.wait("session:s1", cursor, timeout=5.0)
        assert [event for _, event in events] == [{"type": "reply", "text": "hi"}]
        assert time.monotonic() - started < 1.0
        assert [entry.text for entry in inbox.get("s1")[1]] == ["help"]
        inbox.close("s1")
        assert inbox.get("s1") is None and inbox.open_conversations() == []
    finally:
        server.stop()


def test_redis_down_the_console_answers_503_and_customers_are_still_answered(tiny_bundle, tmp_path) -> None:
    from tests.support import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    client = slot_bot_app(tiny_bundle, REDIS_URL=server.url).test_client()
    chat(client, "bye")
    assert len(client.get("/admin/inbox/conversations", headers=AUTH).get_json()["conversations"]) == 1
    server.stop()
    response = client.get("/admin/inbox/conversations", headers=AUTH)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "inbox_unavailable"
    assert chat(client, "hello", session="s2")["response"] in ("Hello!", "Hi there.")  # no context, no fault


def test_giving_back_a_conversation_whose_session_expired_clears_the_inbox(tiny_bundle) -> None:
    app = slot_bot_app(tiny_bundle)
    client = app.test_client()
    chat(client, "bye")
    app.extensions["chatbot"].sessions.clear("s1")  # as when CHATBOT_SESSION_TTL passes
    assert act(client, "s1", "release", "alice").status_code == 200
    assert client.get("/admin/inbox/conversations", headers=AUTH).get_json()["conversations"] == []
    assert act(client, "s1", "release", "alice").status_code == 409  # nothing left to give back


def test_no_stream_is_held_open_for_a_session_nobody_handed_over(tiny_bundle) -> None:
    client = slot_bot_app(tiny_bundle).test_client()
    chat(client, "hello")
    response = client.get("/api/v1/sessions/s1/events")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_handed_over"
