"""Record every answered message in the conversation log, off the request path.

A view hands its replies to ``log_replies``, which only appends a small tuple to a bounded buffer:
answering never waits for the database. A background thread per worker process (started on the
first message, so it runs in the gunicorn worker and not in the preloading master) redacts the
texts, then writes them in batches. When the database is down or full the batch is retried with a
back-off while new rows wait in the buffer; rows that find the buffer full are dropped. Every row
that never reaches the database is counted in ``chatbot_conversation_log_lost_rows`` on /metrics.

A client opts out per request with the header ``X-Chatbot-Log: off`` or ``"log": false`` in its
JSON body; CHATBOT_LOG=off turns the log off for everyone.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring as encode_string
from typing import Any, NamedTuple

from flask import Flask, current_app, g, request
from prometheus_client import Counter
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from chatbot.data.intents import FALLBACK_TAG
from chatbot.dialogue.decision import Reply
from chatbot.learning.message_log import ConversationStore, default_database_url, utc_now
from chatbot.learning.redact import redact

log = logging.getLogger(__name__)

RANKING_STORED = 3  # intents kept per message, best first
QUEUE_CAPACITY = 10_000  # rows waiting for the writer; at most ~20 MB at the longest messages allowed
BATCH_SIZE = 500  # rows per transaction
FLUSH_INTERVAL = 0.5  # seconds between the writer's looks at the buffer
RETRY_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds between retries while the database is down
RETENTION_SWEEP_INTERVAL = 3600.0  # seconds between deletions of messages past retention
OPT_OUT_HEADER = "X-Chatbot-Log"


class Answered(NamedTuple):
    """What one request's messages share: when, where and by which model they were answered."""

    created_at: dt.datetime
    endpoint: str
    session: str | None
    model: str  # the bundle's fingerprint
    latency_ms: float  # from the request's start to its replies


class Logged(NamedTuple):
    """One answered message waiting in the buffer: small, whatever the number of intents."""

    answered: Answered
    text: str
    top: tuple[tuple[str, float], ...]  # the best RANKING_STORED intents and confidences
    fallback: bool
    intent: str  # the intent answered, or the best guess when falling back


def database_url(config: dict[str, Any]) -> str:
    """Return the configured database URL, or the SQLite file beside the model."""
    return config["DATABASE_URL"] or default_database_url(config["MODEL_PATH"])


class ConversationLog:
    """A bounded buffer of answered messages and the thread that writes them in batches."""

    def __init__(
        self,
        url: str,
        retention_days: int,
        lost_rows: Counter,
        written_rows: Counter,
        capacity: int = QUEUE_CAPACITY,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.url = url
        self.retention = dt.timedelta(days=retention_days)
        self.lost_rows = lost_rows
        self.written_rows = written_rows
        # A deque, not a queue.Queue: appending wakes no thread. The writer polls it every
        # FLUSH_INTERVAL instead, so a request never pays for a thread switch (that cost 20-30%
        # of the req/s on a busy machine).
        self.buffer: deque[Logged] = deque()
        self.capacity = capacity
        self.batch_size = batch_size
        self._stopping = threading.Event()
        self._owner_pid: int | None = None  # the process whose thread drains the buffer
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._available = True  # the last write worked; an outage is logged once, not per batch

    def record(self, answered: Answered, texts: Sequence[str], replies: Sequence[Reply]) -> None:
        """Buffer answered messages for the writer; never blocks and never raises."""
        if self._owner_pid != os.getpid():
            self._start_writer()
        for text, reply in zip(texts, replies, strict=True):
            # Several threads may pass this check at once: the bound holds to within a few rows.
            if len(self.buffer) >= self.capacity:
                self.lost_rows.labels("queue_full").inc()
            else:
                # The top of the ranking only: a whole one holds every intent (150 in CLINC150).
                top = reply.ranking.label_probabilities[:RANKING_STORED]
                self.buffer.append(Logged(answered, text, top, reply.fallback, reply.intent))

    def _start_writer(self) -> None:
        # After a fork the parent's thread is gone: each process starts its own on first use.
        with self._start_lock:
            if self._owner_pid == os.getpid():
                return
            self._owner_pid = os.getpid()
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._run, name="conversation-log", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered and stop the writer (at worker exit)."""
        if self._thread is not None and self._owner_pid == os.getpid():
            self._stopping.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        store = ConversationStore(self.url)
        migrated = False
        next_sweep = 0.0
        pending: list[dict[str, Any]] = []
        failures = 0
        while True:
            if not pending:
                pending = [to_row(*item) for item in self._take_batch()]
                if not pending:
                    break  # stopping, and everything is written
            try:
                if not migrated:
                    store.migrate()
                    migrated = True
                store.insert(pending)
            except (OperationalError, OSError) as exc:  # down, unreachable, locked or full: try again
                self._report_outage(exc)
                if self._stopping.wait(RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]):
                    break
                failures += 1
                continue
            except SQLAlchemyError as exc:  # rows the database refuses: retrying won't help
                log.error("conversation log: %d rows refused by the database: %s", len(pending), exc)
                self.lost_rows.labels("refused").inc(len(pending))
            else:
                self.written_rows.inc(len(pending))
                if not self._available:
                    log.warning("conversation log: database available again")
                    self._available = True
            failures = 0
            pending = []
            if time.monotonic() >= next_sweep:
                self._delete_expired(store)
                next_sweep = time.monotonic() + RETENTION_SWEEP_INTERVAL
        unwritten = len(pending) + len(self.buffer)  # stopping while the database is down
        if unwritten:
            self.lost_rows.labels("database_error").inc(unwritten)
        store.close()

    def _delete_expired(self, store: ConversationStore) -> None:
        """Delete messages past the retention period; a failure waits for the next sweep."""
        try:
            deleted = store.delete_older_than(utc_now() - self.retention)
        except SQLAlchemyError as exc:
            log.warning("conversation log: cannot delete expired messages yet: %s", exc)
        else:
            if deleted:
                log.info("conversation log: deleted %d messages past retention", deleted)

    def _take_batch(self) -> list[Logged]:
        """Wait until rows are buffered and take up to a batch; an empty list means stop."""
        while not self.buffer:
            if self._stopping.is_set():
                return []
            self._stopping.wait(FLUSH_INTERVAL)
        return [self.buffer.popleft() for _ in range(min(len(self.buffer), self.batch_size))]

    def _report_outage(self, exc: Exception) -> None:
        if self._available:
            log.warning("conversation log: database unavailable, holding rows and retrying: %s", exc)
            self._available = False


def to_row(
    answered: Answered, text: str, top: Sequence[tuple[str, float]], fallback: bool, intent: str
) -> dict[str, Any]:
    """Turn an answered message into a database row, redacting the text first."""
    scores = [round(float(score), 6) for _, score in top]
    # The JSON of [[name, score], ...], built directly: json.dumps took a fifth of the writer's time.
    ranking = ",".join(
        f"[{encode_string(name)}, {score!r}]" for (name, _), score in zip(top, scores, strict=True)
    )
    return {
        "created_at": answered.created_at,
        "endpoint": answered.endpoint,
        "session_id": answered.session,
        "text": redact(text),
        "intent": top[0][0],
        "confidence": scores[0],
        "ranking": f"[{ranking}]",
        "fallback": fallback,
        "answer_intent": FALLBACK_TAG if fallback else intent,
        "model": answered.model,
        "latency_ms": answered.latency_ms,
    }


def init_app(app: Flask) -> None:
    """Create the process's conversation log when CHATBOT_LOG is on, and migrate its database."""
    if not app.config["CONVERSATION_LOG"]:
        return
    metrics = app.extensions["metrics"]
    lost = Counter(
        "chatbot_conversation_log_lost_rows",
        "Answered messages that never reached the conversation log, by reason.",
        ["reason"],
        registry=metrics.registry,
    )
    written = Counter(
        "chatbot_conversation_log_written_rows",
        "Answered messages written to the conversation log.",
        registry=metrics.registry,
    )
    url = database_url(app.config)
    app.extensions["conversation_log"] = ConversationLog(
        url,
        app.config["LOG_RETENTION_DAYS"],
        lost,
        written,
        # Not environment settings: tests shrink them to overflow the queue on purpose.
        capacity=app.config.get("LOG_QUEUE_CAPACITY", QUEUE_CAPACITY),
        batch_size=app.config.get("LOG_BATCH_SIZE", BATCH_SIZE),
    )
    app.before_request(start_timer)
    store = ConversationStore(url)
    try:
        store.migrate()  # at start, so a broken database shows in the log at once
    except (SQLAlchemyError, OSError) as exc:  # the writer migrates again once it can connect
        log.warning("conversation log: cannot prepare the database yet, answering anyway: %s", exc)
    finally:
        store.close()


def start_timer() -> None:
    """Note when the request started, for the latency stored with its messages."""
    g.convlog_started = time.perf_counter()


def log_replies(
    texts: Sequence[str],
    replies: Sequence[Reply],
    session: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Queue answered messages for the log, unless it is off or the client opted out."""
    extensions = current_app.extensions
    conversation_log = extensions.get("conversation_log")
    if conversation_log is None or opted_out(payload):
        return
    started = g.get("convlog_started")
    answered = Answered(
        created_at=utc_now(),
        endpoint=request.path[:32],
        session=session,
        model=extensions["chatbot"].dialogue.bundle.fingerprint,
        latency_ms=(time.perf_counter() - started) * 1000 if started is not None else 0.0,
    )
    conversation_log.record(answered, texts, replies)


def log_operator_reply(text: str, session: str, operator: str) -> None:
    """Queue an operator's reply for the log: intent "operator", answered by "operator:<name>".

    Its confidence is 1, so the review inbox (messages the bot was unsure of) never lists it.
    """
    conversation_log = current_app.extensions.get("conversation_log")
    if conversation_log is None:
        return
    answered = Answered(utc_now(), request.path[:32], session, "operator", 0.0)
    if conversation_log._owner_pid != os.getpid():  # this module's own class: the writer starts once
        conversation_log._start_writer()
    if len(conversation_log.buffer) >= conversation_log.capacity:
        conversation_log.lost_rows.labels("queue_full").inc()
        return
    conversation_log.buffer.append(
        Logged(answered, text, (("operator", 1.0),), False, f"operator:{operator}")
    )


def opted_out(payload: Mapping[str, Any] | None) -> bool:
    """Say whether the client asked not to be logged: the header, or ``"log": false`` in its JSON."""
    if request.headers.get(OPT_OUT_HEADER, "").strip().lower() in {"off", "0", "false", "no"}:
        return True
    return payload is not None and payload.get("log") is False
