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

from chatbot.data.builtin_entities import (
    BUILTIN_TYPES,
    DEFAULT_TIMEZONE,
    BuiltinExtractor,
    BuiltinSettings,
    check_timezone,
    display_value,
)
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
    learned: tuple[str, ...] = ()  # entities the tagger learns from annotated patterns
    builtins: tuple[str, ...] = ()  # built-in entities the bot names (builtin_entities.py)
    timezone: str = DEFAULT_TIMEZONE  # what relative dates are read in
    region: str | None = None  # the country of phone numbers written without +country

    def to_dict(self) -> dict[str, Any]:
        """Return the domain as it appears in intents.json (top-level ``entities`` and ``slots``)."""
        # The newer keys only when set, so the data hash of a bot without them is unchanged.
        optional = {
            "learned_entities": list(self.learned),
            "builtin_entities": list(self.builtins),
            "timezone": self.timezone if self.timezone != DEFAULT_TIMEZONE else None,
            "region": self.region,
        }
        return {
            "entities": {definition.name: definition.to_dict() for definition in self.entities},
            "slots": {name: {"entity": entity} for name, entity in self.slots.items()},
            **{key: value for key, value in optional.items() if value},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Domain:
        """Rebuild a domain written by ``to_dict``."""
        return cls(
            entities=tuple(
                EntityDefinition.from_dict(name, spec) for name, spec in raw.get("entities", {}).items()
            ),
            slots={name: spec["entity"] for name, spec in raw.get("slots", {}).items()},
            learned=tuple(raw.get("learned_entities", ())),
            builtins=tuple(raw.get("builtin_entities", ())),
            timezone=raw.get("timezone", DEFAULT_TIMEZONE),
            region=raw.get("region"),
        )

    def extractor(self) -> EntityExtractor:
        """Return an extractor for this domain's entities (compiles every pattern: build it once)."""
        return EntityExtractor(self.entities)

    def builtin_extractor(self, language: str) -> BuiltinExtractor | None:
        """Return an extractor of the built-in entities the bot names, or None when it names none."""
        if not self.builtins:
            return None
        return BuiltinExtractor(self.builtins, BuiltinSettings(language, self.timezone, self.region))

    def slot_types(self) -> dict[str, str]:
        """Return slot -> type: the built-in entity that fills it ("date", ...), else "text"."""
        return {slot: entity if entity in self.builtins else "text" for slot, entity in self.slots.items()}


def validate_domain(raw: Any, source: str = "intents", learned: tuple[str, ...] = ()) -> Domain:
    """Check the top-level ``entities`` and ``slots`` of an intents file and return them.

    ``learned`` names the entities annotated in the patterns: they need no other declaration.
    """
    raw = raw if isinstance(raw, dict) else {}
    entities = validate_entities(raw.get("entities"), source)
    learned = tuple(sorted({*learned, *_names_list(raw, "learned_entities", (), source)}))
    builtins = _names_list(raw, "builtin_entities", BUILTIN_TYPES, source)
    timezone = raw.get("timezone", DEFAULT_TIMEZONE)
    try:
        check_timezone(timezone if isinstance(timezone, str) else "")
    except ValueError as exc:
        raise IntentsError(f'{source}: "timezone": {exc}') from exc
    region = raw.get("region")
    if region is not None and not (isinstance(region, str) and re.fullmatch(r"[A-Z]{2}", region)):
        raise IntentsError(f'{source}: "region" must be a two-letter country code such as "DE"')
    names = {definition.name for definition in entities} | set(learned) | set(builtins)
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
    slot_entities = {name: spec["entity"] for name, spec in slots.items()}
    return Domain(entities, slot_entities, learned, builtins, timezone, region)


def _names_list(raw: dict[str, Any], key: str, allowed: tuple[str, ...], source: str) -> tuple[str, ...]:
    """Return a list of entity names under ``key``; ``allowed`` limits them when not empty."""
    names = raw.get(key, [])
    if not isinstance(names, list) or not all(
        isinstance(name, str) and NAME_PATTERN.fullmatch(name) for name in names
    ):
        raise IntentsError(f'{source}: "{key}" must be a list of entity names')
    if allowed and (unknown := sorted(set(names) - set(allowed))):
        raise IntentsError(f'{source}: "{key}": unknown {unknown}; known: {", ".join(allowed)}')
    return tuple(dict.fromkeys(names))


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


def displayed(values: Mapping[str, str], domain: Domain, language: str) -> Mapping[str, str]:
    """Return slot values as the bot says them: a date slot spelled out in the bot's language."""
    if not domain.builtins:
        return values
    types = domain.slot_types()
    return {slot: display_value(types.get(slot, "text"), value, language) for slot, value in values.items()}


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
