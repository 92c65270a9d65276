"""Run one chat turn: the core's step, the webhook it names, the handoff, and the session's new state.

The core (chatbot.dialogue.turn) decides what to say; this module does the I/O around it: the
session store, the action's webhook (whose failures become the fallback text, never a 5xx) and the
operator's handoff hook and inbox (app/handoff.py). While a person has the conversation, the bot
stays silent; when nobody could take it over, the bot says so and stays in the conversation.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from flask import current_app

from app.actions import WebhookError
from app.bot import current_bot
from app.errors import ApiError
from app.handoff import UNSTAFFED_RESPONSE, WEB, Recipient, closed, customer_wrote, hand_over, staffed
from app.log_writer import log_replies
from app.metrics import observe_action, observe_handoff, observe_replies
from app.sessions import SessionState, Turn
from chatbot.data.actions import DEFAULT_TIMEOUT_MS, parse_webhook_reply
from chatbot.data.slots import render
from chatbot.dialogue.turn import Step, take_turn

log = logging.getLogger(__name__)

HANDOFF_INTENT = "handoff"  # the intent recorded for messages a person answers


def converse(
    session_id: str,
    message: str,
    payload: Mapping[str, Any] | None = None,
    recipient: Recipient = WEB,
    time_zone: str | None = None,
) -> dict[str, Any]:
    """Answer a message in a session and return the chat reply's JSON fields.

    ``payload`` is the request's JSON, for the conversation log's per-request opt-out;
    ``recipient`` says where the customer talks, for the operators' replies; ``time_zone`` (a
    checked IANA name) is the customer's, kept with the session for this and later messages.
    """
    bot = current_bot()
    state = bot.sessions.get(session_id)
    if time_zone is not None and time_zone != state.time_zone:
        state = dataclasses.replace(state, time_zone=time_zone)
    if state.handoff:
        state = state.after(Turn(message, "", HANDOFF_INTENT), state.context)
        notify_operator("message", session_id, state)
        customer_wrote(session_id, message)
        bot.sessions.save(session_id, state)
        return {"response": "", "intent": None, "fallback": False, "context": state.context} | _extras(
            [], [], state
        )
    step = take_turn(bot.dialogue, message, state.context, state.slots, state.pending, state.time_zone)
    observe_replies([step.reply])
    log_replies([message], [step.reply], session_id, payload)
    response, quick_replies, slots = step.reply.response, list(step.reply.quick_replies), step.slots
    if step.action is not None:
        response, quick_replies, slots = run_action(step, session_id, message)
    if step.handoff and not staffed():
        step = dataclasses.replace(step, handoff=False)
        response, quick_replies = UNSTAFFED_RESPONSE, []
        observe_handoff("unstaffed")
    state = state.after(
        Turn(message, response, step.reply.intent),
        step.reply.context,
        slots=slots,
        pending=step.pending,
        handoff=step.handoff,
    )
    if step.handoff:
        observe_handoff("started")
        notify_operator("handoff", session_id, state)
        hand_over(session_id, recipient, state)
    bot.sessions.save(session_id, state)
    reply = step.reply
    intent = {"name": reply.intent, "confidence": round(reply.confidence, 6)}
    return {"response": response, "intent": intent, "fallback": reply.fallback, "context": reply.context} | (
        _extras(step.entities, quick_replies, state)
    )


def _extras(entities: list[Any], quick_replies: list[str], state: SessionState) -> dict[str, Any]:
    return {
        "quick_replies": quick_replies,
        "entities": [entity.to_dict() for entity in entities],
        "slots": dict(state.slots),
        "handoff": state.handoff,
    }


def run_action(step: Step, session_id: str, message: str) -> tuple[str, list[str], dict[str, str]]:
    """Call the step's webhook; return the response, quick replies and slots to use.

    Any failure answers with the action's fallback text (or the intent's rendered response).
    """
    action, intent = step.action, step.reply.intent
    event = {
        "event": "action",
        "intent": intent,
        "session_id": session_id,
        "message": message,
        "entities": [entity.to_dict() for entity in step.entities],
        "slots": step.slots,
    }
    fallback = render(action.fallback, step.slots) if action.fallback else step.reply.response
    bot = current_bot()
    try:
        body = bot.webhooks.post(action.url, event, action.timeout_ms)
        answer = parse_webhook_reply(body, bot.dialogue.bundle.domain.slots)
    except WebhookError as exc:
        return _failed(intent, exc.outcome, str(exc), fallback, step)
    except ValueError as exc:
        return _failed(intent, "invalid_reply", str(exc), fallback, step)
    observe_action(intent, "ok")
    slots = {**step.slots, **answer.slots}
    return answer.text or step.reply.response, list(answer.quick_replies), slots


def _failed(
    intent: str, outcome: str, detail: str, fallback: str, step: Step
) -> tuple[str, list[str], dict[str, str]]:
    log.warning("action of intent %s failed, answering with its fallback: %s", intent, detail)
    observe_action(intent, outcome)
    return fallback, [], step.slots


def notify_operator(event: str, session_id: str, state: SessionState) -> None:
    """Tell the operator's hook about a handoff (or a message during one), with the transcript."""
    url = current_app.config["HANDOFF_URL"]
    if url is None:
        return
    payload = {
        "event": event,
        "session_id": session_id,
        "transcript": [vars(turn) for turn in state.turns],
        "slots": dict(state.slots),
    }
    try:
        current_bot().webhooks.post(url, payload, DEFAULT_TIMEOUT_MS)
    except WebhookError as exc:  # the user is still handed over; the operator sees the session later
        log.warning("handoff hook not told about session %s: %s", session_id, exc)
        observe_handoff("notify_failed")


def release(session_id: str) -> None:
    """Hand a session back to the bot; raise ApiError 409 when no person has it."""
    sessions = current_bot().sessions
    state = sessions.get(session_id)
    if not state.handoff:
        raise ApiError(409, "not_handed_over", f"session {session_id} is not handed over to a person")
    sessions.save(session_id, dataclasses.replace(state, handoff=False, pending=None))
    closed(session_id)
    observe_handoff("released")
