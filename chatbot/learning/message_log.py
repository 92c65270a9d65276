"""Store answered messages in a SQL database (SQLite or PostgreSQL) and read them back for review.

SQLAlchemy Core keeps one set of queries for both databases. SQLite is the embedded default, a file
beside the model in WAL mode, so several gunicorn workers on one host can write while a reviewer
reads; PostgreSQL (through psycopg 3) serves several replicas. The schema is versioned: ``migrate``
applies the missing steps of MIGRATIONS under a lock, so workers and replicas starting together
apply each step once; the tables the queries use are those steps replayed, so a fresh database
and an upgraded one end alike.

Rows are redacted before they reach this module (see app/log_writer.py); this module stores what it
is given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from chatbot.files import exclusive_lock

DATABASE_FILE = "conversations.sqlite3"  # beside the model, when no database URL is set
OUT_OF_SCOPE_REVIEW = "out_of_scope"  # the review mark of a message the bot should not answer
ASSIGNED_PREFIX = "intent:"  # the review mark of a message added as a phrase of that intent
_MIGRATION_LOCK = 0x63686174  # PostgreSQL advisory lock key ("chat"), held while migrating
MAX_INTENT_CHARS = 200
MAX_SESSION_CHARS = 128
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
    """A migration step that adds a (nullable or defaulted) column to a table."""

    table: str
    column: Callable[[], sa.Column]

    def apply(self, connection: Connection) -> None:
        """Alter the table in the database."""
        definition = sa.schema.CreateColumn(self.column()).compile(dialect=connection.dialect)
        connection.execute(sa.text(f"ALTER TABLE {self.table} ADD COLUMN {definition}"))

    def declare(self, schema: sa.MetaData) -> None:
        """Add the column to the schema the queries use."""
        schema.tables[self.table].append_column(self.column())


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
MIGRATIONS: tuple[MigrationStep, ...] = (CreateTable("chatbot_messages", _messages_v1),)


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


messages = declare_schema(MIGRATIONS).tables["chatbot_messages"]


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
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the workers' writes
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe in WAL mode; a crash loses no commit
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
            return migrate(connection, MIGRATIONS)

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
        """Write rows in one transaction: all of them or, on an error, none."""
        if rows:
            with self.engine.begin() as connection:
                connection.execute(messages.insert(), list(rows))

    def delete_older_than(self, cutoff: dt.datetime) -> int:
        """Delete the messages logged before ``cutoff`` (retention) and return how many."""
        with self.engine.begin() as connection:
            return connection.execute(messages.delete().where(messages.c.created_at < cutoff)).rowcount

    def count(self) -> int:
        """Return the number of stored messages."""
        with self.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the newest messages, newest first."""
        query = sa.select(messages).order_by(messages.c.id.desc()).limit(limit)
        return self._rows(query)

    def needing_review(self, since: dt.datetime, below: float, limit: int) -> list[dict[str, Any]]:
        """Return unreviewed messages since a time that fell back or scored below ``below``, newest first."""
        query = (
            sa.select(messages)
            .where(
                messages.c.created_at >= since,
                messages.c.review.is_(None),
                sa.or_(messages.c.fallback, messages.c.confidence < below),
            )
            .order_by(messages.c.created_at.desc(), messages.c.id.desc())
            .limit(limit)
        )
        return self._rows(query)

    def mark_reviewed(self, ids: Sequence[int], review: str) -> int:
        """Record a reviewer's decision on messages so they leave the inbox; return how many changed."""
        with self.engine.begin() as connection:
            return connection.execute(
                messages.update()
                .where(messages.c.id.in_(list(ids)), messages.c.review.is_(None))
                .values(review=review, reviewed_at=utc_now())
            ).rowcount

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
