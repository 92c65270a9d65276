"""The conversation log as the app writes it: every answer recorded off the request path, redacted,
opt-out honoured, and a database outage costing log rows (counted) but never an answer."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy.exc import OperationalError

from app import create_app
from chatbot.dialogue.decision import Dialogue
from chatbot.learning.message_log import ConversationStore, utc_now
from tests.harness import wait_until
from tests.support import PostgresServer, record_figures

LOST = re.compile(r'chatbot_conversation_log_lost_rows_total\{reason="(\w+)"\} (\d+)\.0')


def log_app(dialogue: Dialogue, database: str, **config):
    """Return the app with the conversation log on, writing to ``database``."""
    settings = {"TESTING": True, "RATE_LIMIT": None, "CONVERSATION_LOG": True, "DATABASE_URL": database}
    return create_app(settings | config, dialogue=dialogue)


def lost_rows(metrics_text: str) -> dict[str, int]:
    """Read the lost-row counters from a /metrics page."""
    return {reason: int(count) for reason, count in LOST.findall(metrics_text)}


def wait_for_rows(store: ConversationStore, count: int, timeout: float = 10) -> list[dict]:
    """Wait until the writer thread has stored ``count`` messages and return them, newest first."""

    def stored() -> bool:
        """the log holds the expected messages"""
        try:
            return store.count() >= count
        except OperationalError:  # the writer has not created the database yet
            return False

    wait_until(stored, timeout=timeout)
    return store.recent()


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.sqlite3'}"


def test_every_endpoint_is_logged_with_its_numbers_and_redacted(dialogue: Dialogue, database: str) -> None:
    client = log_app(dialogue, database).test_client()
    assert client.post("/predict", json={"data": "hello"}).status_code == 200
    assert (
        client.post(
            "/api/v1/chat", json={"session_id": "s-1", "message": "mail me: a.b@example.com"}
        ).status_code
        == 200
    )
    assert client.post("/api/v1/parse", json={"texts": ["bye", "call 555-123-4567"]}).status_code == 200
    rows = wait_for_rows(ConversationStore(database), 4)
    by_text = {row["text"]: row for row in rows}
    assert set(by_text) == {"hello", "mail me: [email]", "bye", "call [phone]"}
    hello = by_text["hello"]
    assert (hello["endpoint"], hello["intent"], hello["answer_intent"], hello["fallback"]) == (
        "/predict",
        "greeting",
        "greeting",
        False,
    )
    assert hello["ranking"][0][0] == "greeting" and len(hello["ranking"]) == 3
    assert hello["model"] == dialogue.bundle.fingerprint and hello["latency_ms"] > 0
    assert by_text["mail me: [email]"]["session_id"] == "s-1"
    assert by_text["bye"]["endpoint"] == "/api/v1/parse" and by_text["bye"]["session_id"] is None


def test_clients_opt_out_per_request(dialogue: Dialogue, database: str) -> None:
    client = log_app(dialogue, database).test_client()
    client.post("/predict", json={"data": "secret one"}, headers={"X-Chatbot-Log": "off"})
    client.post("/api/v1/chat", json={"message": "secret two", "log": False})
    client.post("/api/v1/parse", json={"text": "secret three", "log": False})
    client.post("/api/v1/parse", json={"text": "kept", "log": True})
    rows = wait_for_rows(ConversationStore(database), 1)
    assert [row["text"] for row in rows] == ["kept"]


def test_log_off_writes_nothing(dialogue: Dialogue, tmp_path: Path) -> None:
    app = log_app(dialogue, f"sqlite:///{tmp_path / 'log.sqlite3'}", CONVERSATION_LOG=False)
    assert app.test_client().post("/predict", json={"data": "hello"}).status_code == 200
    assert "conversation_log" not in app.extensions and not (tmp_path / "log.sqlite3").exists()


def test_database_out_of_reach_costs_log_rows_not_answers_and_recovers(
    dialogue: Dialogue, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's folder should be")
    database = f"sqlite:///{blocker / 'log.sqlite3'}"
    app = log_app(dialogue, database, LOG_QUEUE_CAPACITY=2, LOG_BATCH_SIZE=1)
    client = app.test_client()
    replies = [client.post("/api/v1/parse", json={"text": f"hello {n}"}) for n in range(10)]
    assert [reply.status_code for reply in replies] == [200] * 10
    # One row in the writer's failing batch and two in the queue wait; the rest are counted lost.
    assert 7 <= lost_rows(client.get("/metrics").text)["queue_full"] <= 8

    blocker.unlink()  # the database can be created now: the held rows go in on the next retry
    store = ConversationStore(database)
    rows = wait_for_rows(store, 1, timeout=15)
    client.post("/api/v1/parse", json={"text": "after"})
    rows = wait_for_rows(store, len(rows) + 1)
    assert rows[0]["text"] == "after" and 2 <= len(rows) <= 4


@pytest.mark.slow
def test_killing_postgres_mid_traffic_loses_no_answer_and_logging_resumes(
    serve, tiny_model_path: Path
) -> None:
    database = PostgresServer()
    try:
        database.start()
        server = serve(
            tiny_model_path,
            {"CHATBOT_LOG": "on", "CHATBOT_DATABASE_URL": database.url, "WEB_CONCURRENCY": "2"},
        )
        statuses: list[int] = []
        sent = threading.Event()

        def traffic() -> None:
            with requests.Session() as session:
                for number in range(300):
                    response = session.post(
                        f"{server.url}/api/v1/parse", json={"text": f"hello {number}"}, timeout=10
                    )
                    statuses.append(response.status_code)
                    if number == 100:
                        sent.set()

        sender = threading.Thread(target=traffic)
        sender.start()
        sent.wait(timeout=30)
        database.crash()
        sender.join(timeout=60)
        assert statuses == [200] * 300

        def outage_noticed() -> bool:
            """the writer met the dead database (a restart before its next flush would hide it)"""
            return "conversation log: database unavailable" in server.log_so_far()

        wait_until(outage_noticed, timeout=30)
        database.start()
        for number in range(20):
            assert server.post("/api/v1/parse", {"text": f"after {number}"}).status_code == 200
        store = ConversationStore(database.url)

        def accounted() -> bool:
            """every answer is in the log or counted lost, and logging resumed"""
            lost = sum(lost_rows(server.get("/metrics").text).values())
            return store.count() + lost == 320 and store.recent(1)[0]["text"].startswith("after")

        wait_until(accounted, timeout=30)
        lost = sum(lost_rows(server.get("/metrics").text).values())
        assert lost <= 2 * 500  # at most the batch each worker was writing when the server died
        store.close()
        assert server.log_so_far().count("conversation log: database unavailable") >= 1
    finally:
        database.stop()
        database.remove()


def test_text_a_database_cannot_hold_is_stored_and_the_writer_lives_on(
    dialogue: Dialogue, database: str
) -> None:
    client = log_app(dialogue, database, LOG_BATCH_SIZE=500).test_client()
    odd = '{"texts": ["lone \\ud800 surrogate", "nul \\u0000 byte", "hello"]}'  # JSON allows both
    assert client.post("/api/v1/parse", data=odd, content_type="application/json").status_code == 200
    store = ConversationStore(database)
    wait_for_rows(store, 3)
    assert client.post("/api/v1/parse", json={"text": "after"}).status_code == 200
    rows = wait_for_rows(store, 4)
    assert {row["text"] for row in rows} == {"lone \ufffd surrogate", "nul \ufffd byte", "hello", "after"}
    assert lost_rows(client.get("/metrics").text) == {}


def test_a_row_the_database_refuses_costs_that_row_only(dialogue: Dialogue, database: str) -> None:
    store = ConversationStore(database)
    store.migrate()
    with store.engine.begin() as connection:  # a database rule the writer cannot know about
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON chatbot_messages WHEN NEW.text = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'no poison here'); END"
        )
    client = log_app(dialogue, database).test_client()
    texts = ["one", "poison", "three"]
    assert client.post("/api/v1/parse", json={"texts": texts}).status_code == 200
    assert {row["text"] for row in wait_for_rows(store, 2)} == {"one", "three"}
    wait_until(lambda: lost_rows(client.get("/metrics").text) == {"refused": 1}, timeout=10)
    assert client.post("/api/v1/parse", json={"text": "after"}).status_code == 200
    assert wait_for_rows(store, 3)[0]["text"] == "after"
    record_figures("log_bad_rows", {"batch": len(texts), "written": 2, "refused": 1})


def test_one_client_adds_a_bounded_number_of_rows_a_minute(dialogue: Dialogue, database: str) -> None:
    client = log_app(dialogue, database, LOG_CLIENT_ROWS_PER_MINUTE=5).test_client()
    for batch in range(3):
        texts = [f"message {batch}-{number}" for number in range(4)]
        assert client.post("/api/v1/parse", json={"texts": texts}).status_code == 200
    other = {"REMOTE_ADDR": "10.0.0.7"}
    assert (
        client.post("/api/v1/parse", json={"text": "another client"}, environ_base=other).status_code == 200
    )
    store = ConversationStore(database)
    rows = wait_for_rows(store, 6)
    assert len(rows) == 6 and "another client" in {row["text"] for row in rows}
    assert lost_rows(client.get("/metrics").text) == {"client_budget": 7}


def test_retention_holds_while_the_bot_is_idle(
    dialogue: Dialogue, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.log_writer.RETENTION_SWEEP_INTERVAL", 0.2)  # an hour, shortened
    client = log_app(dialogue, database, LOG_RETENTION_DAYS=30).test_client()
    assert client.post("/api/v1/parse", json={"text": "hello"}).status_code == 200
    store = ConversationStore(database)
    wait_for_rows(store, 1)
    expired = store.recent(1)[0] | {"created_at": utc_now() - dt.timedelta(days=90), "text": "old"}
    store.insert(
        [{key: value for key, value in expired.items() if key not in {"id", "ranking"}} | {"ranking": "[]"}]
    )
    wait_until(lambda: store.count() == 1, timeout=10)  # no message arrived since: the sweep still ran
    assert store.recent()[0]["text"] == "hello"


def healthz_delays(server, seconds: float) -> list[float]:
    """Ask /healthz every 20 ms for a while and return how long each answer took."""
    delays = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert session.get(f"{server.url}/healthz", timeout=10).status_code == 200
            delays.append(time.perf_counter() - started)
            time.sleep(0.02)
    return delays


@pytest.mark.slow
def test_a_held_write_lock_never_freezes_the_worker(serve, tiny_model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    server = serve(
        tiny_model_path,
        {"CHATBOT_LOG": "on", "CHATBOT_DATABASE_URL": f"sqlite:///{path}", "WEB_CONCURRENCY": "1"},
    )
    assert server.post("/api/v1/parse", {"text": "hello"}).status_code == 200
    store = ConversationStore(f"sqlite:///{path}")
    wait_for_rows(store, 1)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write: the writer waits 3 s per try
    try:
        assert server.post("/api/v1/parse", {"texts": ["one", "two"]}).status_code == 200
        delays = healthz_delays(server, 4.0)
    finally:
        holder.rollback()
        holder.close()
    wait_for_rows(store, 3)
    # The writer waited for the lock on a thread of its own: on the event loop it froze /healthz 3 s.
    assert max(delays) < 1.0, f"slowest /healthz {max(delays):.3f} s"
    record_figures(
        "log_write_lock",
        {
            "held_s": 4,
            "probes": len(delays),
            "healthz_max_ms": round(1000 * max(delays), 1),
            "healthz_median_ms": round(1000 * statistics.median(delays), 1),
        },
    )


@pytest.mark.slow
def test_messages_in_query_strings_stay_out_of_the_access_log(serve, tiny_model_path: Path) -> None:
    server = serve(tiny_model_path, {"CHATBOT_LOG": "off"})
    secret = "my card is 4111111111111111"
    response = requests.post(f"{server.url}/predict", params={"data": secret}, timeout=10)
    assert response.status_code == 200
    requests.get(f"{server.url}/healthz", timeout=10)  # its line comes after /predict's
    wait_until(lambda: '"GET /healthz HTTP/1.1" 200' in server.log_so_far(), timeout=10)
    log_text = server.log_so_far()
    assert "4111" not in log_text and "data=" not in log_text
    assert '"POST /predict HTTP/1.1" 200' in log_text
