"""One conversation turn after the intent decision: entities, slots, the question to ask, the action due.

The dialogue decides the intent (fallbacks and context included); ``take_turn`` then applies what
the bot remembers. It extracts the message's entities into slots, continues an intent that was
waiting for a slot when the message supplies it, asks for the next missing slot, or renders the
answer and says which webhook to call and whether to hand over. It is pure: the web layer keeps
the state and makes the calls.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.data.actions import Action
from chatbot.data.entities import Entity
from chatbot.data.intents import Intent
from chatbot.data.slots import displayed, missing_slots, render, slot_updates
from chatbot.dialogue.decision import Dialogue, Reply, next_context

log = logging.getLogger(__name__)

RANKING_SIZE = 5  # intents listed in a parse result


@dataclass(frozen=True)
class Step:
    """The outcome of one turn, before any webhook call."""

    reply: Reply  # its response is rendered: a slot question or the intent's answer
    entities: list[Entity]
    slots: dict[str, str]  # every slot value after this message
    pending: str | None  # the intent waiting for a slot, to continue when the user gives it
    action: Action | None = None  # the webhook that answers this turn
    handoff: bool = False  # the answer hands the conversation to a person


def take_turn(
    dialogue: Dialogue,
    message: str,
    context: str | None = None,
    slots: Mapping[str, str] | None = None,
    pending: str | None = None,
    time_zone: str | None = None,
) -> Step:
    """Answer a message with the conversation's context, slot values and waiting intent; dates in
    it are read in the conversation's IANA ``time_zone`` (None: the bot's)."""
    reply = dialogue.reply(message, context)
    entities = dialogue.extractor.extract(message, None, time_zone, reply.ranking.label_probabilities)
    return continue_turn(dialogue, reply, entities, slots, pending)


def take_turns(dialogue: Dialogue, messages: Sequence[str], time_zone: str | None = None) -> list[Step]:
    """Answer messages with no conversation, in one batched forward pass (``/api/v1/parse``'s batches)."""
    replies = dialogue.reply_batch(messages)
    return [
        continue_turn(
            dialogue,
            reply,
            dialogue.extractor.extract(message, None, time_zone, reply.ranking.label_probabilities),
        )
        for message, reply in zip(messages, replies, strict=True)
    ]


def continue_turn(
    dialogue: Dialogue,
    reply: Reply,
    entities: list[Entity],
    slots: Mapping[str, str] | None = None,
    pending: str | None = None,
) -> Step:
    """Apply entities and slots to the dialogue's reply to a message (see ``take_turn``)."""
    values = slot_updates(entities, dialogue.bundle.domain.slots, slots)
    shown = displayed(values, dialogue.bundle.domain, dialogue.bundle.config.language)
    intent = dialogue.intents_by_tag.get(reply.intent)
    waiting = dialogue.intents_by_tag.get(pending) if pending else None
    if waiting is not None and _continues(waiting, reply, intent, slots or {}, values):
        log.debug("message fills a slot of waiting intent %s", waiting.tag)
        intent = waiting
        reply = dataclasses.replace(
            reply,
            intent=waiting.tag,
            fallback=False,
            response=dialogue.rng.choice(waiting.responses),
            context=next_context(waiting, reply.context),
            quick_replies=waiting.quick_replies,
        )
    elif reply.fallback or intent is None:
        if waiting is not None and (missing := missing_slots(waiting.require, values)):
            # An answer the bot cannot read (no date for a date slot): ask the same question again.
            again = dataclasses.replace(reply, response=render(missing[0].question, shown), quick_replies=())
            return Step(again, entities, values, waiting.tag)
        return Step(_rendered(reply, shown), entities, values, pending)
    if missing := missing_slots(intent.require, values):
        question = dataclasses.replace(reply, response=render(missing[0].question, shown), quick_replies=())
        return Step(question, entities, values, intent.tag)
    return Step(_rendered(reply, shown), entities, values, None, intent.action, intent.handoff)


def parse_result(text: str, step: Step) -> dict[str, Any]:
    """Describe what the classifier saw in a text and what the bot answers: ``/api/v1/parse``'s
    body and ``chatbot predict --json``'s output."""
    reply = step.reply
    return {
        "text": text,
        "intent": _intent(*reply.ranking.top),  # the classifier's top label, whatever the bot answers
        # The intent the turn chose (what /api/v1/chat calls "intent"); "fallback" says if it fell back.
        "chosen_intent": _intent(reply.intent, reply.confidence),
        "ranking": [
            _intent(name, confidence) for name, confidence in reply.ranking.label_probabilities[:RANKING_SIZE]
        ],
        "response": reply.response,
        "fallback": reply.fallback,
        "entities": [entity.to_dict() for entity in step.entities],
    }


def _intent(name: str, confidence: float) -> dict[str, Any]:
    return {"name": name, "confidence": round(confidence, 6)}


def _continues(
    waiting: Intent, reply: Reply, chosen: Intent | None, before: Mapping[str, str], after: Mapping[str, str]
) -> bool:
    """Say whether a message answers the waiting intent's question rather than starting anew."""
    filled = any(before.get(request.slot) != after.get(request.slot) for request in waiting.require)
    unrelated = reply.fallback or chosen is None or not (chosen.require or chosen.action or chosen.handoff)
    return filled and unrelated


def _rendered(reply: Reply, values: Mapping[str, str]) -> Reply:
    return dataclasses.replace(reply, response=render(reply.response, values))
