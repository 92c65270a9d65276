"""The review inbox: what the bot failed to answer, grouped, and the author's decisions on it.

Messages that fell back or scored below a confidence are grouped by trigram similarity, so a
question asked fifty ways appears once with its count; the most frequent and newest come first.
The groups are named as messages are stored (chatbot/learning/message_log.py), by the id of their
first message, so a name stays while new messages arrive and opening the inbox is one query, not a
comparison of every pair of messages. Deciding on a group (add it to an intent, create
an intent, or mark it out of scope) edits the intents or out-of-scope file and marks every message
of the group reviewed, so it leaves the inbox. ``chatbot review`` and /admin/review both call here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.data.edit import add_intent, add_out_of_scope, add_phrase
from chatbot.errors import EditError
from chatbot.learning.message_log import ASSIGNED_PREFIX, OUT_OF_SCOPE_REVIEW, ConversationStore, utc_now

DEFAULT_DAYS = 30
DEFAULT_BELOW = 0.7  # answered with less confidence than this: worth a look even if not a fallback
OUT_OF_SCOPE_FILE = "out_of_scope.txt"  # beside the intents file; `chatbot train --oos-val` reads it
STATS_WINDOWS = (7, 30)


@dataclass(frozen=True)
class ReviewGroup:
    """Near-duplicate messages awaiting a decision, newest first."""

    id: int  # the group's first message's id: names the group in commands and forms
    text: str  # the newest message: the phrase proposed for training
    count: int
    latest: dt.datetime
    guess: str  # the classifier's most frequent top intent in the group
    confidence: float  # the newest message's top confidence
    fallbacks: int
    message_ids: tuple[int, ...] = ()  # filled by find_group, for a decision

    def to_dict(self) -> dict[str, Any]:
        """Return the group as JSON-ready data."""
        return {
            "id": self.id,
            "text": self.text,
            "count": self.count,
            "latest": self.latest.isoformat(timespec="seconds") + "Z",
            "guess": self.guess,
            "confidence": round(self.confidence, 4),
            "fallbacks": self.fallbacks,
        }


def inbox(
    store: ConversationStore,
    days: int = DEFAULT_DAYS,
    below: float = DEFAULT_BELOW,
    now: dt.datetime | None = None,
) -> list[ReviewGroup]:
    """Return every group awaiting review, most frequent first, then newest."""
    return inbox_page(store, days, below, now, limit=None)[0]


def inbox_page(
    store: ConversationStore,
    days: int = DEFAULT_DAYS,
    below: float = DEFAULT_BELOW,
    now: dt.datetime | None = None,
    limit: int | None = 200,
) -> tuple[list[ReviewGroup], int]:
    """Return the first ``limit`` groups awaiting review, most frequent first, and how many there are."""
    since = (now or utc_now()) - dt.timedelta(days=days)
    store.name_groups()  # messages an older version stored without a group
    groups = [_group(row) for row in store.review_groups(since, below, limit=limit)]
    total = len(groups) if limit is None else store.count_review_groups(since, below)
    return groups, total


def find_group(
    store: ConversationStore, group_id: int, days: int = DEFAULT_DAYS, below: float = DEFAULT_BELOW
) -> ReviewGroup:
    """Return the inbox group named by an id; raise EditError when it is gone (decided meanwhile)."""
    since = utc_now() - dt.timedelta(days=days)
    found = store.review_groups(since, below, group_id)
    if not found:
        raise EditError(
            f"no group {group_id} in the inbox: it was decided already, or is older than {days} days"
        )
    return dataclasses.replace(
        _group(found[0]), message_ids=tuple(store.group_members(group_id, since, below))
    )


def _group(row: dict[str, Any]) -> ReviewGroup:
    return ReviewGroup(
        id=row["group_id"],
        text=row["text"],
        count=row["count"],
        latest=row["created_at"],
        guess=row["guess"],
        confidence=row["confidence"],
        fallbacks=row["fallbacks"],
    )


def out_of_scope_path(intents_path: str | Path) -> Path:
    """Return the out-of-scope file that goes with an intents file."""
    return Path(intents_path).with_name(OUT_OF_SCOPE_FILE)


def assign(
    store: ConversationStore,
    group: ReviewGroup,
    intents_path: str | Path,
    tag: str,
    phrase: str | None = None,
) -> str:
    """Add the group's phrase (or an edited one) to an existing intent; return what was done."""
    written = add_phrase(intents_path, tag, phrase or group.text)
    _mark_reviewed(store, group, ASSIGNED_PREFIX + tag)
    return f"added {written!r} to intent {tag!r} ({group.count} messages reviewed)"


def create_intent(
    store: ConversationStore,
    group: ReviewGroup,
    intents_path: str | Path,
    tag: str,
    response: str,
    phrase: str | None = None,
) -> str:
    """Create an intent from the group's phrase with a response; return what was done."""
    written = add_intent(intents_path, tag, phrase or group.text, response)
    _mark_reviewed(store, group, ASSIGNED_PREFIX + tag)
    return f"created intent {tag!r} with {written!r} ({group.count} messages reviewed)"


def mark_out_of_scope(
    store: ConversationStore, group: ReviewGroup, intents_path: str | Path, phrase: str | None = None
) -> str:
    """Record the group's phrase as out of scope, for calibration; return what was done."""
    path = out_of_scope_path(intents_path)
    added = add_out_of_scope(path, phrase or group.text)
    _mark_reviewed(store, group, OUT_OF_SCOPE_REVIEW)
    note = "added to" if added else "already in"
    return f"{note} {path.name} ({group.count} messages reviewed)"


def _mark_reviewed(store: ConversationStore, group: ReviewGroup, decision: str) -> None:
    if not group.message_ids:  # an inbox listing names groups only: find_group reads their messages
        raise ValueError(f"group {group.id} carries no message ids: decide on a group from find_group")
    store.mark_reviewed(group.message_ids, decision)


def stats(store: ConversationStore, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return the fallback rate per day over the last 30 days and the top intents over 7 and 30 days."""
    now = now or utc_now()
    daily = store.daily_fallbacks(now - dt.timedelta(days=max(STATS_WINDOWS)))
    return {
        "fallback_rate_per_day": [
            {"day": day, "messages": total, "fallbacks": fell, "rate": fell / total if total else 0.0}
            for day, total, fell in daily
        ],
        "top_intents": {
            f"{days}d": [
                {"intent": intent, "count": count}
                for intent, count in store.top_intents(now - dt.timedelta(days=days), limit=8)
            ]
            for days in STATS_WINDOWS
        },
    }
