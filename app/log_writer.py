"""Record every answered message in the conversation log, off the request path.

A view hands its replies to ``log_replies``, which only appends a small tuple to a bounded buffer:
answering never waits for the database. A background thread per worker process (started on the
first message, so it runs in the gunicorn worker and not in the preloading master) redacts the
texts, then writes them in batches. When the database is down or full the batch is retried with a
back-off while new rows wait in the buffer; rows that find the buffer full are dropped. A batch the
database refuses is written again row by row, so a bad row costs that row only, and no exception
ends the thread. Every row that never reaches the database is counted in
``chatbot_conversation_log_lost_rows`` on /metrics, by reason.

Under gevent the writer is a greenlet, so its database work, redaction and retention sweeps run on
a real thread (app/offload.py): a held SQLite lock or a long delete never freezes the worker's other
connections. One client adds at most LOG_CLIENT_ROWS_PER_MINUTE messages a minute per worker.

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

from flask import Flask, current_app, request
from prometheus_client import Counter
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.offload import off_loop
from app.timer import elapsed_seconds
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
TRANSIENT = (OperationalError, OSError)  # down, unreachable, locked or full: worth a retry
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
        client_rows_per_minute: int | None = None,
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
        self.client_rows_per_minute = client_rows_per_minute
        self._minute = 0  # the minute the counts below are for
        self._client_rows: dict[str, int] = {}  # rows each client added this minute

    def within_budget(self, client: str | None, rows: int) -> int:
        """Return how many of a client's rows the log takes now; count the rest lost."""
        if self.client_rows_per_minute is None or client is None:
            return rows
        minute = int(time.monotonic() // 60)
        if minute != self._minute:  # a fixed window: the table holds this minute's clients only
            self._minute, self._client_rows = minute, {}
        used = self._client_rows.get(client, 0)
        taken = max(0, min(rows, self.client_rows_per_minute - used))
        self._client_rows[client] = used + taken
        if taken < rows:
            self.lost_rows.labels("client_budget").inc(rows - taken)
        return taken

    def record(
        self,
        answered: Answered,
        texts: Sequence[str],
        replies: Sequence[Reply],
        client: str | None = None,
    ) -> None:
        """Buffer answered messages for the writer; never blocks and never raises."""
        if self._owner_pid != os.getpid():
            self._start_writer()
        taken = self.within_budget(client, len(texts))
        for text, reply in zip(texts[:taken], replies[:taken], strict=True):
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
        next_sweep = 0.0
        pending: list[dict[str, Any]] = []
        failures = 0
        while True:
            try:
                if not pending:
                    batch = self._take_batch(next_sweep)
                    if batch is None:
                        break  # stopping, and everything is written
                    pending = off_loop(self._to_rows, batch)
                if pending:
                    pending = off_loop(self._write, store, pending)
            except Exception:  # a bug here must cost rows (counted), never the thread
                log.exception("conversation log: unexpected error, %d rows lost", len(pending))
                self.lost_rows.labels("writer_error").inc(len(pending))
                pending = []
            if pending:  # the database is unreachable: hold the rows and wait
                if self._stopping.wait(RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]):
                    break
                failures += 1
                continue
            failures = 0
            if time.monotonic() >= next_sweep:
                off_loop(self._delete_expired, store)
                next_sweep = time.monotonic() + RETENTION_SWEEP_INTERVAL
        unwritten = len(pending) + len(self.buffer)  # stopping while the database is down
        if unwritten:
            self.lost_rows.labels("database_error").inc(unwritten)
        store.close()

    def _to_rows(self, batch: Sequence[Logged]) -> list[dict[str, Any]]:
        """Redact and shape a batch; a message that cannot be turned into a row is counted lost."""
        rows = []
        for item in batch:
            try:
                rows.append(to_row(*item))
            except Exception:  # a redaction pattern's bug costs that message only
                log.exception("conversation log: cannot prepare a message, dropped")
                self.lost_rows.labels("refused").inc()
        return rows

    def _write(self, store: ConversationStore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write rows; return those to retry (the database is unreachable), none once written or refused."""
        try:
            if not store.migrated:
                store.migrate()
            store.insert(rows)
        except TRANSIENT as exc:
            self._report_outage(exc)
            return rows
        except Exception as exc:  # one row the database refuses fails its batch: find it
            log.warning(
                "conversation log: batch of %d refused (%s), writing its rows one by one", len(rows), exc
            )
            return self._write_one_by_one(store, rows)
        self._written(len(rows))
        return []

    def _write_one_by_one(self, store: ConversationStore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for position, row in enumerate(rows):
            try:
                store.insert([row])
            except TRANSIENT as exc:
                self._report_outage(exc)
                return rows[position:]
            except Exception as exc:  # this row only: retrying won't help
                log.error("conversation log: a row refused by the database: %s", exc)
                self.lost_rows.labels("refused").inc()
            else:
                self._written(1)
        return []

    def _written(self, count: int) -> None:
        self.written_rows.inc(count)
        if not self._available:
            log.warning("conversation log: database available again")
            self._available = True

    def _delete_expired(self, store: ConversationStore) -> None:
        """Delete messages past the retention period; a failure waits for the next sweep."""
        delete_expired(store, self.retention)

    def _take_batch(self, next_sweep: float) -> list[Logged] | None:
        """Wait until rows are buffered or a sweep is due and take up to a batch; None means stop."""
        while not self.buffer:
            if self._stopping.is_set():
                return None
            if time.monotonic() >= next_sweep:
                return []  # idle, but retention still holds
            self._stopping.wait(FLUSH_INTERVAL)
        return [self.buffer.popleft() for _ in range(min(len(self.buffer), self.batch_size))]

    def _report_outage(self, exc: Exception) -> None:
        if self._available:
            log.warning("conversation log: database unavailable, holding rows and retrying: %s", exc)
            self._available = False


def delete_expired(store: ConversationStore, retention: dt.timedelta) -> None:
    """Delete messages past the retention period; a failure waits for the next sweep."""
    try:
        deleted = store.delete_older_than(utc_now() - retention)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("conversation log: cannot delete expired messages yet: %s", exc)
    else:
        if deleted:
            log.info("conversation log: deleted %d messages past retention", deleted)


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
        client_rows_per_minute=app.config.get("LOG_CLIENT_ROWS_PER_MINUTE"),
    )
    store = ConversationStore(url)
    try:
        store.migrate()  # at start, so a broken database shows in the log at once
    except (SQLAlchemyError, OSError) as exc:  # the writer migrates again once it can connect
        log.warning("conversation log: cannot prepare the database yet, answering anyway: %s", exc)
    finally:
        store.close()


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
    answered = Answered(
        created_at=utc_now(),
        endpoint=request.path[:32],
        session=session,
        model=extensions["chatbot"].dialogue.bundle.fingerprint,
        latency_ms=(elapsed_seconds() or 0.0) * 1000,
    )
    conversation_log.record(answered, texts, replies, request.remote_addr)


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
