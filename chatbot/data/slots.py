"""Slots: values a conversation remembers (filled from entities), and response templates that use them.

A bot declares its slots in the top-level ``slots`` object of intents.json, each filled by one
entity: ``"slots": {"order_number": {"entity": "order_number"}}``. An intent may ``require`` slots,
each with the question to ask while it is missing, and its responses may name slots in braces:
``"Order {order_number} is on its way"``. Rendering is plain substitution, never ``str.format``:
a value such as ``{__class__}`` or ``<script>`` comes out exactly as the user typed it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatbot.data.entities import NAME_PATTERN, EntityDefinition, EntityExtractor, validate_entities
from chatbot.errors import IntentsError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_SLOT_CHARS = 200  # a slot value longer than this is cut: sessions stay small whatever users type


@dataclass(frozen=True)
class SlotRequest:
    """A slot an intent needs, and the question that asks for it."""

    slot: str
    question: str


@dataclass(frozen=True)
class Domain:
    """What a bot extracts and remembers: its entity definitions and slot -> entity."""

    entities: tuple[EntityDefinition, ...] = ()
    slots: Mapping[str, str] = field(default_factory=dict)  # slot name -> the entity that fills it

    def to_dict(self) -> dict[str, Any]:
        """Return the domain as it appears in intents.json (top-level ``entities`` and ``slots``)."""
        return {
            "entities": {definition.name: definition.to_dict() for definition in self.entities},
            "slots": {name: {"entity": entity} for name, entity in self.slots.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Domain:
        """Rebuild a domain written by ``to_dict``."""
        return cls(
            entities=tuple(
                EntityDefinition.from_dict(name, spec) for name, spec in raw.get("entities", {}).items()
            ),
            slots={name: spec["entity"] for name, spec in raw.get("slots", {}).items()},
        )

    def extractor(self) -> EntityExtractor:
        """Return an extractor for this domain's entities (compiles every pattern: build it once)."""
        return EntityExtractor(self.entities)


def validate_domain(raw: Any, source: str = "intents") -> Domain:
    """Check the top-level ``entities`` and ``slots`` of an intents file and return them."""
    raw = raw if isinstance(raw, dict) else {}
    entities = validate_entities(raw.get("entities"), source)
    names = {definition.name for definition in entities}
    slots = raw.get("slots", {})
    if not isinstance(slots, dict):
        raise IntentsError(f'{source}: "slots" must be an object of slot name -> {{"entity": name}}')
    for name, spec in slots.items():
        where = f"{source}: slot {name!r}"
        if not NAME_PATTERN.fullmatch(name):
            raise IntentsError(f"{where}: a name is letters, digits and _ (not starting with a digit)")
        if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
            raise IntentsError(f'{where}: expected {{"entity": "<entity name>"}}')
        if spec["entity"] not in names:
            raise IntentsError(f'{where}: entity {spec["entity"]!r} is not defined under "entities"')
    return Domain(entities, {name: spec["entity"] for name, spec in slots.items()})


def validate_requests(raw: Any, slots: Mapping[str, str], where: str) -> tuple[SlotRequest, ...]:
    """Check an intent's ``require`` list: known slots, each with a question."""
    if not isinstance(raw, list):
        raise IntentsError(f'{where}: "require" must be a list of {{"slot": name, "ask": question}}')
    requests = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("slot"), str):
            raise IntentsError(f'{where}: "require"[{position}] must be {{"slot": name, "ask": question}}')
        if item["slot"] not in slots:
            raise IntentsError(f'{where}: requires slot {item["slot"]!r}, which is not defined under "slots"')
        question = item.get("ask")
        if not isinstance(question, str) or not question.strip():
            raise IntentsError(f'{where}: "require"[{position}] needs an "ask" question')
        requests.append(SlotRequest(item["slot"], question))
    return tuple(requests)


def check_template(template: str, slots: Mapping[str, str], where: str) -> None:
    """Raise IntentsError when a template names a slot the bot does not define."""
    for name in PLACEHOLDER.findall(template):
        if name not in slots:
            raise IntentsError(
                f'{where}: {template!r} uses slot {{{name}}}, which is not defined under "slots"'
            )


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{slot}`` placeholders with slot values as plain text (an unset slot renders empty)."""
    if "{" not in template:
        return template
    # re.sub with a function inserts each value as it is: it is never parsed again.
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), ""), template)


def slot_updates(
    entities: list[Any], slots: Mapping[str, str], values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return the slot values after a message: each slot takes the first value of its entity."""
    updated = dict(values or {})
    filled: set[str] = set()
    for entity in entities:
        for slot, entity_name in slots.items():
            if entity_name == entity.entity and slot not in filled:
                updated[slot] = entity.value[:MAX_SLOT_CHARS]
                filled.add(slot)
    return updated


def missing_slots(requests: tuple[SlotRequest, ...], values: Mapping[str, str]) -> list[SlotRequest]:
    """Return the requests whose slot has no value yet, in the order the intent lists them."""
    return [request for request in requests if not values.get(request.slot)]
