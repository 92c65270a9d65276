"""Store answered messages in a SQL database (SQLite or PostgreSQL) and read them back for review.

SQLAlchemy Core keeps one set of queries for both databases. SQLite is the embedded default, a file
beside the model in WAL mode, so several gunicorn workers on one host can write while a reviewer
reads; PostgreSQL (through psycopg 3) serves several replicas. The schema is versioned: ``migrate``
applies the missing steps of MIGRATIONS under a lock, so workers and replicas starting together
apply each step once; the tables the queries use are those steps replayed, so a fresh database
and an upgraded one end alike.

Rows are redacted before they reach this module (see app/log_writer.py). What a database cannot
hold (a NUL, a lone UTF-16 surrogate, a name longer than its column) is made storable here, so one
odd message never makes a database refuse the batch it came in.

Each message carries the id of its review group, given in the transaction that inserts it (see
``ConversationStore.insert``): a group is named by the id of its first message and keeps that name
while messages arrive, and the review inbox is a GROUP BY, not a comparison of every pair.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from chatbot.files import exclusive_lock
from chatbot.text.similarity import NearDuplicateIndex

DATABASE_FILE = "conversations.sqlite3"  # beside the model, when no database URL is set
OUT_OF_SCOPE_REVIEW = "out_of_scope"  # the review mark of a message the bot should not answer
ASSIGNED_PREFIX = "intent:"  # the review mark of a message added as a phrase of that intent
_MIGRATION_LOCK = 0x63686174  # PostgreSQL advisory lock key ("chat"), held while migrating
_GROUP_LOCK = 0x67726F75  # PostgreSQL advisory lock key ("grou"), held while naming groups
MAX_INTENT_CHARS = 200
MAX_SESSION_CHARS = 128
# Looser than validate's near-duplicate bar: "gift cards" and "giftcards" are one question here.
GROUP_SIMILARITY = 0.7
GROUPS_REMEMBERED = 50_000  # newest groups a process matches new messages against (~40 MB at most)
GROUPING_BACKLOG = 5_000  # ungrouped messages (older versions left them) named per insert at most
DELETE_CHUNK = 5_000  # rows per retention transaction: a short write lock, a small journal
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the SQLite WAL keeps after a checkpoint
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # NUL (PostgreSQL) and lone surrogates (both drivers)
_TEXT_LIMITS = {
    "endpoint": 32,
    "session_id": MAX_SESSION_CHARS,
    "text": None,
    "intent": MAX_INTENT_CHARS,
    "ranking": None,
    "answer_intent": MAX_INTENT_CHARS,
    "model": 64,
}

SCHEMA_VERSION_TABLE = "chatbot_schema"  # one row: how many MIGRATIONS the database has had


@dataclass(frozen=True)
class CreateTable:
    """A migration step that creates a table as it was when the step was written."""

    name: str
    parts: Callable[[], list[sa.SchemaItem]]  # fresh columns and indexes each call: one Table owns them

    def apply(self, connection: Connection) -> None:
        """Create the table in the database."""
        sa.Table(self.name, sa.MetaData(), *self.parts()).create(connection)

    def declare(self, schema: sa.MetaData) -> None:
        """Add the table to the schema the queries use."""
        sa.Table(self.name, schema, *self.parts())


@dataclass(frozen=True)
class AddColumn:
    """A migration step that adds a (nullable or defaulted) column to a table, indexed if named."""

    table: str
    column: Callable[[], sa.Column]
    index: str | None = None  # the name of an index on the new column

    def apply(self, connection: Connection) -> None:
        """Alter the table in the database."""
        column = self.column()
        definition = sa.schema.CreateColumn(column).compile(dialect=connection.dialect)
        connection.execute(sa.text(f"ALTER TABLE {self.table} ADD COLUMN {definition}"))
        if self.index:
            table = sa.Table(self.table, sa.MetaData(), column)
            sa.Index(self.index, table.c[column.name]).create(connection)

    def declare(self, schema: sa.MetaData) -> None:
        """Add the column (and its index) to the schema the queries use."""
        table = schema.tables[self.table]
        table.append_column(self.column())
        if self.index:
            sa.Index(self.index, table.c[self.column().name])


MigrationStep = CreateTable | AddColumn


def _messages_v1() -> list[sa.SchemaItem]:
    return [
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column(
            "created_at", sa.DateTime, nullable=False
        ),  # UTC, without a zone: the same in both databases
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(MAX_SESSION_CHARS)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("intent", sa.String(MAX_INTENT_CHARS), nullable=False),  # the classifier's top intent
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("ranking", sa.Text, nullable=False),  # JSON [[intent, confidence], ...], best first
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column(
            "answer_intent", sa.String(MAX_INTENT_CHARS), nullable=False
        ),  # "fallback" when it fell back
        sa.Column("model", sa.String(64), nullable=False),  # the bundle's fingerprint
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("review", sa.String(MAX_INTENT_CHARS + 16)),  # None until a reviewer decides
        sa.Column("reviewed_at", sa.DateTime),
        sa.Index("chatbot_messages_created_at", "created_at"),
    ]


# Each step takes the schema from version i to i + 1, and the tables the queries use are these
# steps replayed (declare_schema), so a fresh database and an upgraded one end the same. Append,
# never edit: databases out there hold the earlier steps. A step's columns are written out in it,
# never taken from the live tables, which later steps change.
MIGRATIONS: tuple[MigrationStep, ...] = (
    CreateTable("chatbot_messages", _messages_v1),
    # Version 2: each message's review group, given when it is stored (see ConversationStore.insert).
    AddColumn(
        "chatbot_messages",
        lambda: sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
        index="chatbot_messages_group_id",
    ),
)


def declare_schema(steps: Sequence[MigrationStep]) -> sa.MetaData:
    """Return the tables as the steps leave them, with the schema's version table."""
    schema = sa.MetaData()
    sa.Table(SCHEMA_VERSION_TABLE, schema, sa.Column("version", sa.Integer, nullable=False))
    for step in steps:
        step.declare(schema)
    return schema


def migrate(connection: Connection, steps: Sequence[MigrationStep]) -> int:
    """Apply the steps a database lacks, in the caller's transaction, and return its new version."""
    schema_version = declare_schema(()).tables[SCHEMA_VERSION_TABLE]
    schema_version.create(connection, checkfirst=True)
    version = connection.execute(sa.select(schema_version.c.version)).scalar()
    if version is None:
        connection.execute(schema_version.insert().values(version=0))
        version = 0
    for step in steps[version:]:
        step.apply(connection)
    if version < len(steps):
        connection.execute(schema_version.update().values(version=len(steps)))
    return max(version, len(steps))


_schema = declare_schema(MIGRATIONS)
messages = _schema.tables["chatbot_messages"]
schema_version = _schema.tables[SCHEMA_VERSION_TABLE]


def storable(row: dict[str, Any]) -> dict[str, Any]:
    """Return the row with NULs and lone surrogates replaced by U+FFFD and names cut to their columns."""
    fixed = dict(row)
    for name, limit in _TEXT_LIMITS.items():
        value = fixed.get(name)
        if isinstance(value, str):
            value = _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value
            fixed[name] = value[:limit] if limit is not None else value
    return fixed


def _awaiting_review(since: dt.datetime, below: float) -> list[sa.ColumnElement[bool]]:
    """Return the conditions of the review inbox: recent, undecided, and fell back or scored low."""
    return [
        messages.c.created_at >= since,
        messages.c.review.is_(None),
        sa.or_(messages.c.fallback, messages.c.confidence < below),
    ]


def default_database_url(model_path: str | Path) -> str:
    """Return the SQLite URL of the file beside the model."""
    return f"sqlite:///{Path(model_path).resolve().parent / DATABASE_FILE}"


def normalize_database_url(url: str) -> str:
    """Check a database URL and name the installed PostgreSQL driver (psycopg 3) in it."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError("must be a database URL such as sqlite:///path or postgresql://host/db") from exc
    if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername == "sqlite":
        return url
    raise ValueError(f"{parsed.drivername!r} is not supported: use sqlite:/// or postgresql://")


def utc_now() -> dt.datetime:
    """Return the time as stored: UTC without a zone."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class ConversationStore:
    """The conversation log's database: schema, writes and the queries of the review inbox."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url = normalize_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.engine = self._create_engine(timeout)
        self.migrated = False  # migrate() ran from this object
        # The groups this process knows, and the newest message id it has looked at for founders.
        self.groups = NearDuplicateIndex(GROUP_SIMILARITY, capacity=GROUPS_REMEMBERED)
        self._founders_seen = 0

    def _create_engine(self, timeout: float) -> Engine:
        if not self.is_sqlite:
            # A dead server must fail a write within the timeout, not hang the writer thread.
            return sa.create_engine(
                self.url,
                pool_size=2,
                max_overflow=2,
                pool_pre_ping=True,
                connect_args={"connect_timeout": max(1, int(timeout)), "options": "-c timezone=UTC"},
            )
        engine = sa.create_engine(self.url, connect_args={"timeout": timeout})

        @sa.event.listens_for(engine, "connect")
        def use_wal(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            # Only a new, empty file takes this (an existing one keeps its mode until a VACUUM):
            # then pages that retention frees go back to the file system, see delete_older_than.
            cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the workers' writes
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode; a crash loses no commit
            cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            cursor.close()

        return engine

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def migrate(self) -> int:
        """Bring the schema to the latest version and return it; safe to run from many processes."""
        with self._migration_lock(), self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            version = migrate(connection, MIGRATIONS)
        self.migrated = True
        return version

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Hold a file lock beside an SQLite database (PostgreSQL uses an advisory lock instead)."""
        database = make_url(self.url).database
        if not self.is_sqlite or not database or database == ":memory:":
            yield
            return
        path = Path(database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path.with_name(path.name + ".migrate-lock")):
            yield

    def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows and name their review groups in one transaction: all of them or, on an error, none."""
        if rows:
            self._remember_founders()
            with self.engine.begin() as connection:
                self._lock_groups(connection)
                connection.execute(messages.insert(), [storable(row) for row in rows])
                self._name_groups(connection, GROUPING_BACKLOG + len(rows))

    def name_groups(self, limit: int = GROUPING_BACKLOG) -> int:
        """Name the review groups of up to ``limit`` messages stored without one; return how many."""
        ungrouped = sa.select(messages.c.id).where(messages.c.group_id.is_(None)).limit(1)
        with self.engine.connect() as connection:
            if connection.execute(ungrouped).first() is None:
                return 0  # the usual case: every message was named as it was stored
        self._remember_founders()
        with self.engine.begin() as connection:
            self._lock_groups(connection)
            return self._name_groups(connection, limit)

    def _remember_founders(self) -> None:
        """Load the newest groups' founders once per process, before taking the write lock."""
        if self._founders_seen:
            return
        query = (
            sa.select(messages.c.id, messages.c.text)
            .where(messages.c.group_id == messages.c.id)
            .order_by(messages.c.id.desc())
            .limit(GROUPS_REMEMBERED)
        )
        with self.engine.connect() as connection:
            founders = connection.execute(query).all()
        for message_id, text in reversed(founders):
            self.groups.add(message_id, text)
        if founders:
            self._founders_seen = founders[0][0]

    def _lock_groups(self, connection: Connection) -> None:
        """Let one transaction at a time name groups, so two processes never found the same group twice."""
        if self.is_sqlite:
            # A write as the first statement takes SQLite's write lock now, not at the first insert.
            connection.execute(schema_version.update().values(version=schema_version.c.version))
        else:
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_GROUP_LOCK)))

    def _name_groups(self, connection: Connection, limit: int) -> int:
        """Give each ungrouped message the group of the most similar founder, or found a group."""
        founders = connection.execute(
            sa.select(messages.c.id, messages.c.text)
            .where(messages.c.id > self._founders_seen, messages.c.group_id == messages.c.id)
            .order_by(messages.c.id)
        )
        for message_id, text in founders:  # founded by other processes since this one last looked
            self.groups.add(message_id, text)
            self._founders_seen = message_id
        ungrouped = connection.execute(
            sa.select(messages.c.id, messages.c.text)
            .where(messages.c.group_id.is_(None))
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
        named = []
        for message_id, text in ungrouped:
            group_id = self.groups.find(text)
            if group_id is None:
                group_id = message_id
                self.groups.add(group_id, text)
            named.append({"row_id": message_id, "group": group_id})
        if named:
            connection.execute(
                messages.update()
                .where(messages.c.id == sa.bindparam("row_id"))
                .values(group_id=sa.bindparam("group")),
                named,
            )
            self._founders_seen = max(self._founders_seen, named[-1]["row_id"])
        return len(named)

    def delete_older_than(self, cutoff: dt.datetime, chunk: int = DELETE_CHUNK) -> int:
        """Delete the messages logged before ``cutoff`` (retention) in short transactions; return how many.

        Chunks keep each write lock short (a reviewer's Apply or another worker's batch waits for one
        chunk, not for all) and each journal small; SQLite then returns the freed pages to the disk.
        """
        deleted = 0
        while True:
            oldest = sa.select(messages.c.id).where(messages.c.created_at < cutoff).limit(chunk)
            with self.engine.begin() as connection:
                count = connection.execute(messages.delete().where(messages.c.id.in_(oldest))).rowcount
            deleted += count
            if count < chunk:
                break
        if deleted and self.is_sqlite:
            with self.engine.connect() as connection:
                # executescript steps each statement to its end; execute() would free one page only.
                connection.connection.driver_connection.executescript(
                    "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);"
                )
        return deleted

    def count(self) -> int:
        """Return the number of stored messages."""
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest messages, newest first."""
        query = sa.select(messages).order_by(messages.c.id.desc()).limit(limit)
        return self._rows(query)

    def review_groups(
        self, since: dt.datetime, below: float, group_id: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Sum up the groups of the messages awaiting review: most messages first, then newest.

        Returns one dict per group (all, the first ``limit``, or the one named): ``group_id``,
        ``count``, ``fallbacks``, its newest message's ``id``, ``text``, ``confidence`` and
        ``created_at``, and ``guess``, its most frequent top intent. The database sorts and cuts,
        so a page of a large inbox builds a few hundred rows in Python, not one per group.
        """
        awaiting = [*_awaiting_review(since, below), messages.c.group_id.is_not(None)]
        if group_id is not None:
            awaiting.append(messages.c.group_id == group_id)
        totals = self._group_totals(awaiting)
        query = (
            sa.select(
                totals.c.group_id,
                totals.c.count,
                totals.c.fallbacks,
                messages.c.id,
                messages.c.text,
                messages.c.confidence,
                messages.c.created_at,
            )
            .join(messages, messages.c.id == totals.c.newest)
            .order_by(totals.c.count.desc(), totals.c.newest.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            groups = [dict(row._mapping) for row in connection.execute(query)]
            listed = [group["group_id"] for group in groups]
            per_intent = (
                sa.select(messages.c.group_id, messages.c.intent, sa.func.count())
                .where(*awaiting, messages.c.group_id.in_(listed))
                .group_by(messages.c.group_id, messages.c.intent)
            )
            guesses: dict[int, tuple[int, str]] = {}
            for group, intent, count in connection.execute(per_intent):
                # The most frequent intent; on a tie the first in alphabetical order.
                if (-count, intent) < guesses.get(group, (1, "")):
                    guesses[group] = (-count, intent)
        for group in groups:
            group["guess"] = guesses[group["group_id"]][1]
            group["fallbacks"] = int(group["fallbacks"] or 0)
        return groups

    def count_review_groups(self, since: dt.datetime, below: float) -> int:
        """Return how many groups hold messages awaiting review."""
        totals = self._group_totals([*_awaiting_review(since, below), messages.c.group_id.is_not(None)])
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(totals)).scalar_one()

    def _group_totals(self, awaiting: list[sa.ColumnElement[bool]]) -> sa.Subquery:
        return (
            sa.select(
                messages.c.group_id,
                sa.func.count().label("count"),
                sa.func.max(messages.c.id).label("newest"),
                sa.func.sum(sa.case((messages.c.fallback, 1), else_=0)).label("fallbacks"),
            )
            .where(*awaiting)
            .group_by(messages.c.group_id)
            .subquery()
        )

    def group_members(self, group_id: int, since: dt.datetime, below: float) -> list[int]:
        """Return the ids of a group's messages awaiting review."""
        query = (
            sa.select(messages.c.id)
            .where(*_awaiting_review(since, below), messages.c.group_id == group_id)
            .order_by(messages.c.id.desc())
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def mark_reviewed(self, ids: Sequence[int], review: str, chunk: int = DELETE_CHUNK) -> int:
        """Record a reviewer's decision on messages so they leave the inbox; return how many changed."""
        changed = 0
        reviewed_at = utc_now()
        with self.engine.begin() as connection:
            for start in range(0, len(ids), chunk):  # under every database's limit on parameters
                changed += connection.execute(
                    messages.update()
                    .where(messages.c.id.in_(list(ids[start : start + chunk])), messages.c.review.is_(None))
                    .values(review=review, reviewed_at=reviewed_at)
                ).rowcount
        return changed

    def daily_fallbacks(self, since: dt.datetime) -> list[tuple[str, int, int]]:
        """Return (day, messages, fallbacks) for each day with messages since a time, oldest first."""
        day = sa.func.date(messages.c.created_at)
        query = (
            sa.select(day, sa.func.count(), sa.func.sum(sa.case((messages.c.fallback, 1), else_=0)))
            .where(messages.c.created_at >= since)
            .group_by(day)
            .order_by(day)
        )
        with self.engine.connect() as connection:
            return [
                (str(when), int(total), int(fell or 0)) for when, total, fell in connection.execute(query)
            ]

    def top_intents(self, since: dt.datetime, limit: int = 5) -> list[tuple[str, int]]:
        """Return the most answered intents since a time, with counts, most answered first."""
        count = sa.func.count().label("count")
        query = (
            sa.select(messages.c.answer_intent, count)
            .where(messages.c.created_at >= since)
            .group_by(messages.c.answer_intent)
            .order_by(count.desc(), messages.c.answer_intent)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [(intent, int(total)) for intent, total in connection.execute(query)]

    def _rows(self, query: sa.Select) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query)]
        for row in rows:
            row["ranking"] = json.loads(row["ranking"])
        return rows
