"""The conversation store, the same tests against SQLite (a file, WAL) and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatbot.learning import message_log
from chatbot.learning.message_log import (
    MAX_INTENT_CHARS,
    MIGRATIONS,
    AddColumn,
    ConversationStore,
    declare_schema,
    default_database_url,
    migrate,
    normalize_database_url,
    schema_version,
    utc_now,
)
from tests.support import record_figures


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConversationStore]:
    """Return a migrated, empty store in each database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").url
    store = ConversationStore(url)
    store.migrate()
    yield store
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM chatbot_messages"))
    store.close()


def message(
    text: str, *, fallback: bool = False, confidence: float = 0.9, days_ago: float = 0, **fields
) -> dict:
    """Return a row as app/log_writer.py writes it."""
    return {
        "created_at": utc_now() - dt.timedelta(days=days_ago),
        "endpoint": "/api/v1/chat",
        "session_id": "s1",
        "text": text,
        "intent": "greeting",
        "confidence": confidence,
        "ranking": json.dumps([["greeting", confidence], ["goodbye", 0.01]]),
        "fallback": fallback,
        "answer_intent": "fallback" if fallback else "greeting",
        "model": "abc123",
        "latency_ms": 1.5,
        **fields,
    }


# A step 2 as a later version would append it: a column the messages gain.
NEXT_STEPS = (*MIGRATIONS, AddColumn("chatbot_messages", lambda: sa.Column("channel", sa.String(32))))


def new_database(kind: str, name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Return the URL of a database of its own, empty (SQLite: a new file; PostgreSQL: a new database)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / name}.sqlite3"
    server_url = request.getfixturevalue("postgres").url
    engine = sa.create_engine(normalize_database_url(server_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def columns_after(url: str, steps: tuple) -> list[str]:
    """Migrate a database through the steps; return the messages table's columns, and check the version."""
    engine = sa.create_engine(normalize_database_url(url))
    try:
        with engine.begin() as connection:
            assert migrate(connection, steps) == len(steps)
        with engine.connect() as connection:
            return [column["name"] for column in sa.inspect(connection).get_columns("chatbot_messages")]
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_made_by_this_version_upgrades_and_a_fresh_one_takes_every_step(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    made = ConversationStore(new_database(kind, "made_now", tmp_path, request))
    made.migrate()
    made.insert([message("logged before the upgrade")])
    made.close()
    now = [column.name for column in declare_schema(MIGRATIONS).tables["chatbot_messages"].columns]
    expected = [column.name for column in declare_schema(NEXT_STEPS).tables["chatbot_messages"].columns]
    assert expected == [*now, "channel"]
    assert columns_after(made.url, NEXT_STEPS) == expected
    assert columns_after(new_database(kind, "fresh", tmp_path, request), NEXT_STEPS) == expected
    engine = sa.create_engine(normalize_database_url(made.url))
    with engine.connect() as connection:
        old_row = connection.execute(sa.text("SELECT text, channel FROM chatbot_messages")).one()
    engine.dispose()
    assert tuple(old_row) == ("logged before the upgrade", None)


def test_migrate_is_idempotent(store: ConversationStore) -> None:
    assert store.migrate() == store.migrate() == 2
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version FROM chatbot_schema")).all() == [(2,)]


def test_a_version_1_log_is_upgraded_and_its_messages_grouped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v1.sqlite3'}"
    old = ConversationStore(url)
    with old.engine.begin() as connection:  # what the first release created, and one row in it
        MIGRATIONS[0].apply(connection)
        schema_version.create(connection)
        connection.execute(schema_version.insert().values(version=1))
        columns = {key: value for key, value in message("hello there", fallback=True).items()}
        connection.execute(
            sa.text(
                f"INSERT INTO chatbot_messages ({', '.join(columns)}) VALUES "
                f"({', '.join(':' + key for key in columns)})"
            ),
            columns,
        )
    old.close()
    store = ConversationStore(url)
    assert store.migrate() == 2
    store.insert([message("hello there!", fallback=True)])
    assert [row["group_id"] for row in store.recent()] == [1, 1]
    store.close()


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("text", "lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("text", "nul \x00 byte", "nul \ufffd byte"),
        ("intent", "t" * 300, "t" * MAX_INTENT_CHARS),
        ("answer_intent", "a\udfff" * 150, ("a\ufffd" * 150)[:MAX_INTENT_CHARS]),
        ("session_id", "s" * 500, "s" * 128),
    ],
)
def test_what_a_database_cannot_hold_is_stored_safely_and_costs_no_other_row(
    store: ConversationStore, field: str, value: str, stored: str
) -> None:
    store.insert([message("before"), message("odd") | {field: value}, message("after")])
    rows = store.recent()
    assert [row["text"] for row in rows][::2] == ["after", "before"]
    assert rows[1][field] == stored


def test_group_names_stay_while_messages_arrive(store: ConversationStore) -> None:
    store.insert([message("where is my parcel", fallback=True), message("opening hours?", fallback=True)])
    since = utc_now() - dt.timedelta(days=1)
    first = {group["text"]: group["group_id"] for group in store.review_groups(since, 0.7)}
    for batch in range(3):  # newer look-alikes, and a question unlike both
        store.insert([message(f"where is my parcel{'?' * (batch + 1)}", fallback=True)])
        store.insert([message(f"something else entirely {batch}", fallback=True)])
    groups = {group["group_id"]: group for group in store.review_groups(since, 0.7)}
    parcel = groups[first["where is my parcel"]]
    assert parcel["count"] == 4 and parcel["text"] == "where is my parcel???"
    assert groups[first["opening hours?"]]["count"] == 1
    assert len(store.group_members(parcel["group_id"], since, 0.7)) == 4


def test_two_stores_name_groups_alike(store: ConversationStore) -> None:
    other = ConversationStore(store.url)
    store.insert([message("can I pay by card", fallback=True)])
    other.insert([message("can i pay by card?", fallback=True), message("new topic here", fallback=True)])
    store.insert([message("new topic here!", fallback=True)])
    groups = sorted(group["count"] for group in store.review_groups(utc_now() - dt.timedelta(days=1), 0.7))
    assert groups == [2, 2]
    other.close()


def test_rows_round_trip_newest_first(store: ConversationStore) -> None:
    store.insert([message("hello"), message("hi there")])
    rows = store.recent()
    assert [row["text"] for row in rows] == ["hi there", "hello"]
    assert rows[0]["ranking"] == [["greeting", 0.9], ["goodbye", 0.01]] and rows[0]["fallback"] is False
    assert store.count() == 2


def test_inbox_holds_fallbacks_and_low_scores_until_reviewed(store: ConversationStore) -> None:
    store.insert(
        [
            message("sure"),
            message("unsure", confidence=0.4),
            message("lost", fallback=True, confidence=0.95),
            message("old", fallback=True, days_ago=40),
        ]
    )
    since = utc_now() - dt.timedelta(days=30)
    inbox = store.review_groups(since, below=0.7)
    assert [group["text"] for group in inbox] == ["lost", "unsure"]
    assert store.mark_reviewed([inbox[0]["id"]], "out_of_scope") == 1
    assert store.mark_reviewed([inbox[0]["id"]], "intent:greeting") == 0  # the first decision stands
    assert [group["text"] for group in store.review_groups(since, 0.7)] == ["unsure"]


def test_retention_deletes_old_messages_only(store: ConversationStore) -> None:
    store.insert([message("new"), message("old", days_ago=31)])
    assert store.delete_older_than(utc_now() - dt.timedelta(days=30)) == 1
    assert [row["text"] for row in store.recent()] == ["new"]


def test_retention_deletes_in_short_transactions(store: ConversationStore) -> None:
    store.insert([message(f"old {number}", days_ago=40) for number in range(7)] + [message("new")])
    transactions = []
    sa.event.listen(store.engine, "commit", lambda connection: transactions.append(1))
    assert store.delete_older_than(utc_now() - dt.timedelta(days=30), chunk=3) == 7
    assert len(transactions) == 3 and store.count() == 1


def test_stats_per_day_and_top_intents(store: ConversationStore) -> None:
    store.insert(
        [
            message("a", days_ago=1),
            message("b", fallback=True, days_ago=1),
            message("c"),
            message("d"),
            message("e", answer_intent="goodbye"),
        ]
    )
    days = store.daily_fallbacks(utc_now() - dt.timedelta(days=7))
    yesterday, today = (utc_now() - dt.timedelta(days=1)).date(), utc_now().date()
    assert days == [(str(yesterday), 2, 1), (str(today), 3, 0)]
    assert store.top_intents(utc_now() - dt.timedelta(days=7)) == [
        ("greeting", 3),
        ("fallback", 1),
        ("goodbye", 1),
    ]


def test_sqlite_file_is_in_wal_mode_beside_the_model(tmp_path: Path) -> None:
    url = default_database_url(tmp_path / "models" / "bot.h5")
    assert url == f"sqlite:///{tmp_path / 'models' / 'conversations.sqlite3'}"
    ConversationStore(url).migrate()
    with sqlite3.connect(tmp_path / "models" / "conversations.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/chat", "postgresql+psycopg://u:p@db:5432/chat"),
        ("postgres://db/chat", "postgresql+psycopg://db/chat"),
        ("sqlite:////var/lib/chatbot/log.sqlite3", "sqlite:////var/lib/chatbot/log.sqlite3"),
    ],
)
def test_database_urls_name_the_installed_driver(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://db/chat", "not a url"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"not supported|database URL"):
        normalize_database_url(url)


def test_sqlite_file_gives_back_what_retention_deletes(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    store = ConversationStore(f"sqlite:///{path}")
    store.migrate()
    rows = 20_000
    for start in range(0, rows, 500):  # as the writer stores them: batches of 500
        store.insert(
            [message(f"an old question, number {start + offset}", days_ago=40) for offset in range(500)]
        )
    wal = path.with_name(path.name + "-wal")
    wal_full = wal.stat().st_size
    with contextlib.closing(sqlite3.connect(path)) as connection:  # every page in the file, to weigh it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = path.stat().st_size
    assert store.delete_older_than(utc_now() - dt.timedelta(days=30)) == rows
    emptied, wal_after = path.stat().st_size, wal.stat().st_size if wal.exists() else 0
    store.close()
    # Before: the file kept every page (and the WAL its high-water mark) after the delete.
    assert emptied < full / 4 and wal_after <= message_log.JOURNAL_SIZE_LIMIT
    record_figures(
        "log_growth",
        {
            "rows": rows,
            "bytes_per_row": round(full / rows),
            "full_mib": round(full / 2**20, 1),
            "after_delete_mib": round(emptied / 2**20, 2),
            "wal_full_mib": round(wal_full / 2**20, 1),
            "wal_after_mib": round(wal_after / 2**20, 2),
            "journal_limit_mib": message_log.JOURNAL_SIZE_LIMIT // 2**20,
        },
    )
