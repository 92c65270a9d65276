"""What happens around a handoff besides the session's flag: the inbox, live events and delivery.

app/turns.py calls ``hand_over`` when an intent hands a conversation to a person and
``customer_wrote`` for each message meanwhile; the operator console (app/console.py) calls
``operator_wrote`` and, through turns.release, ``closed``. An operator's reply reaches the customer
by the channel the customer uses: an event on the session's topic (the widget listens), a reply
kept for the next request (REST), or a call to the channel's API (Telegram, Slack).

A handoff needs someone to hand over to: the console (on with CHATBOT_ADMIN_TOKEN) or the
operator's hook (CHATBOT_HANDOFF_URL). With neither, ``staffed`` is false and the bot says so
instead of promising a person nobody is told about.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import redis
from flask import Flask, current_app

from app.inbox import INBOX_TOPIC, OPERATOR_PREFIX, Conversation, Entry, Inbox, build_inbox, session_topic
from app.sessions import SessionState

log = logging.getLogger(__name__)
T = TypeVar("T")

# Said instead of the handoff intent's response when nobody could take the conversation over.
UNSTAFFED_RESPONSE = (
    "I'm sorry, no one from our team can answer in this chat right now. I'm still here to help."
)
# Send one message to a customer of a channel: (address, text, quick replies).
Deliver = Callable[[str, str, list[str]], None]


@dataclass(frozen=True)
class Recipient:
    """Where a customer talks: the channel, and the channel's address to answer (None: no push)."""

    channel: str
    address: str | None = None


WEB = Recipient("web")


def init_app(app: Flask) -> None:
    """Create the process's inbox when the console is on (an admin token is set)."""
    if app.config["ADMIN_TOKEN"] is not None:
        app.extensions["inbox"] = build_inbox(app.config["REDIS_URL"])
    app.extensions["channel_delivery"] = {}
    if not staffed(app):
        log.warning(
            "handoff: no one is told about conversations handed to a person, so the bot will say that "
            "no one can answer: set CHATBOT_ADMIN_TOKEN (operator console) or CHATBOT_HANDOFF_URL"
        )


def staffed(app: Flask | None = None) -> bool:
    """Say whether a handed-over conversation reaches someone: the console or the operator's hook."""
    app = app or current_app
    return "inbox" in app.extensions or app.config["HANDOFF_URL"] is not None


def current_inbox() -> Inbox | None:
    """Return this app's inbox, or None when the console is off."""
    return current_app.extensions.get("inbox")


def register_delivery(app: Flask, channel: str, deliver: Deliver) -> None:
    """Let operators' replies reach a channel's customers through ``deliver``."""
    app.extensions["channel_delivery"][channel] = deliver


def hand_over(session_id: str, recipient: Recipient, state: SessionState) -> None:
    """Put a conversation just handed over in the inbox, with its last turns as the transcript."""
    inbox = current_inbox()
    if inbox is None:
        return
    now = time.time()
    entries: list[Entry] = []
    for turn in state.turns:
        entries.append(Entry("customer", turn.message, now))
        if turn.response:
            entries.append(Entry("bot", turn.response, now))
    conversation = Conversation(session_id, recipient.channel, recipient.address, now, now)
    _guarded(lambda: (inbox.open(conversation, entries), inbox.publish(INBOX_TOPIC, _changed(session_id))))


def customer_wrote(session_id: str, text: str) -> None:
    """Add a customer's message to the handed-over conversation and tell the operators."""
    inbox = current_inbox()
    if inbox is None:
        return

    def add() -> None:
        if inbox.add(session_id, Entry("customer", text, time.time())) is not None:
            inbox.publish(INBOX_TOPIC, _changed(session_id))

    _guarded(add)


def operator_wrote(inbox: Inbox, conversation: Conversation, operator: str, text: str) -> None:
    """Add an operator's reply to the conversation and send it to the customer's channel.

    Raises redis.RedisError when the shared inbox is unreachable (the console answers 503).
    """
    session_id = conversation.session_id
    inbox.add(session_id, Entry(OPERATOR_PREFIX + operator, text, time.time()))
    inbox.publish(session_topic(session_id), {"type": "reply", "text": text, "author": "operator"})
    inbox.publish(INBOX_TOPIC, _changed(session_id))
    if conversation.channel == "rest":
        inbox.queue_for_pickup(session_id, text)
    deliver = current_app.extensions["channel_delivery"].get(conversation.channel)
    if deliver is not None and conversation.address is not None:
        deliver(conversation.address, text, [])


def picked_up(session_id: str) -> list[str]:
    """Return the operators' replies waiting for a channel that fetches them (REST)."""
    inbox = current_inbox()
    if inbox is None:
        return []
    return _guarded(lambda: inbox.pick_up(session_id)) or []


def closed(session_id: str) -> None:
    """Take a conversation given back to the bot out of the inbox and tell its listeners."""
    inbox = current_inbox()
    if inbox is None:
        return

    def close() -> None:
        inbox.close(session_id)
        inbox.publish(session_topic(session_id), {"type": "released"})
        inbox.publish(INBOX_TOPIC, _changed(session_id))

    _guarded(close)


def _changed(session_id: str) -> dict[str, str]:
    return {"type": "changed", "session_id": session_id}


def _guarded(work: Callable[[], T]) -> T | None:
    """Run inbox work for a customer's request: Redis being down must not fail the chat."""
    try:
        return work()
    except redis.RedisError as exc:  # the shared breaker has logged the outage
        log.warning("handoff inbox unavailable: %s", exc)
        return None
