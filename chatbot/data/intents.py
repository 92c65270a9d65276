"""Load and validate a bot's intents.json.

Every user error names the intent (index and tag) and the field at fault, so the author can fix the
file without reading a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chatbot.data.actions import Action, validate_action
from chatbot.data.annotations import (
    AnnotatedText,
    AnnotationError,
    check_entity_names,
    escape_markup,
    has_markup,
    parse_annotated,
)
from chatbot.data.slots import Domain, SlotRequest, check_template, validate_domain, validate_requests
from chatbot.errors import IntentsError
from chatbot.text.hidden import find_hidden_character
from chatbot.text.languages import DEFAULT_LANGUAGE, fallback_response, language_code

log = logging.getLogger(__name__)

FALLBACK_TAG = "fallback"
DEFAULT_FALLBACK_RESPONSE = fallback_response(DEFAULT_LANGUAGE)
# Texts of the chat widget (app/static/widget.js) a bot may give in its own language.
WIDGET_STRINGS = frozenset(
    {
        "title",
        "welcome",
        "subtitle",
        "handoff_subtitle",
        "handoff_notice",
        "placeholder",
        "send",
        "restart",
        "close",
        "conversation",
        "typing",
        "suggested",
        "retry",
        "you_said",
        "bot_said",
        "message_to",
        "error_timeout",
        "error_network",
        "error_invalid",
        "error_http",
        "error_rejected",
    }
)
KNOWN_KEYS = frozenset(
    {"tag", "patterns", "responses", "context_set", "context_filter", "quick_replies"}
    | {"require", "action", "handoff"}
)

OMITTED_WHEN_EMPTY = frozenset({"quick_replies", "require", "handoff", "annotated"})


@dataclass(frozen=True)
class Intent:
    """One intent: the phrases that mean it and the answers to give."""

    tag: str
    patterns: tuple[str, ...]
    responses: tuple[str, ...]
    context_set: str | None = None  # a matched intent sets the session's context to this
    context_filter: str | None = None  # the intent is eligible only in this context
    quick_replies: tuple[str, ...] = ()  # button labels offered with the answer; a click sends the label
    require: tuple[SlotRequest, ...] = ()  # slots to ask for, in order, before answering
    action: Action | None = None  # a webhook that answers instead of the responses
    handoff: bool = False  # answering hands the conversation over to a person
    # The patterns as written, with entity annotations; empty when none has any (patterns say it all).
    annotated: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the intent as it appears in intents.json."""
        # Absent optional fields stay absent, so adding a field leaves existing data hashes unchanged.
        item = {
            key: value
            for key, value in asdict(self).items()
            if value is not None and not (key in OMITTED_WHEN_EMPTY and not value)
        }
        if annotated := item.pop("annotated", None):
            item["patterns"] = annotated  # intents.json's form: the annotations are the source
        return item

    def examples(self) -> list[AnnotatedText]:
        """Return the patterns with their entity annotations (none for plain patterns)."""
        if not self.annotated:
            return [AnnotatedText(pattern) for pattern in self.patterns]
        return [parse_annotated(pattern) for pattern in self.annotated]


def load_intents(path: str | Path, plain_text: bool = False) -> list[Intent]:
    """Read and validate an intents file; with ``plain_text``, its phrases are read as plain text
    (``as_plain_text``)."""
    raw = read_intents_file(path)
    return validate_intents(as_plain_text(raw) if plain_text else raw, source=str(path))


def load_language(path: str | Path) -> str:
    """Read an intents file's language: the primary subtag of its ``language`` ("en" if absent)."""
    return validate_language(read_intents_file(path), source=str(path))


def load_widget_strings(path: str | Path) -> dict[str, str]:
    """Read an intents file's ``widget`` texts: the chat widget's strings in the bot's language."""
    return validate_widget_strings(read_intents_file(path), source=str(path))


def load_domain(path: str | Path, plain_text: bool = False) -> Domain:
    """Read an intents file's entities and slots (the whole file is validated)."""
    raw = read_intents_file(path)
    return _validate(as_plain_text(raw) if plain_text else raw, str(path))[1]


def as_plain_text(raw: Any) -> Any:
    """Return an intents file's JSON with its phrases escaped, so that none reads as an annotation.

    For data written without annotations in mind, such as public data sets ("a travel alert for
    [country]"): brackets and backslashes become literal text, where a bot's own file refuses a
    bracket that belongs to no annotation.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("intents"), list):
        return raw  # validation names what is wrong
    entries = [
        {**entry, "patterns": [escape_markup(p) if isinstance(p, str) else p for p in entry["patterns"]]}
        if isinstance(entry, dict) and isinstance(entry.get("patterns"), list)
        else entry
        for entry in raw["intents"]
    ]
    return {**raw, "intents": entries}


def read_intents_file(path: str | Path) -> Any:
    """Return the parsed JSON of an intents file; raise IntentsError when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise IntentsError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IntentsError(f"{path}: cannot read: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IntentsError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    return raw


def validate_intents(raw: Any, source: str = "intents") -> list[Intent]:
    """Check the parsed JSON and return it as intents; raise IntentsError naming the fault."""
    return _validate(raw, source)[0]


def _validate(raw: Any, source: str) -> tuple[list[Intent], Domain]:
    entries = raw.get("intents") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise IntentsError(f'{source}: expected an object with a non-empty "intents" list')
    check_hidden_characters(raw, source)
    validate_language(raw, source)
    validate_widget_strings(raw, source)
    domain = validate_domain(raw, source, learned=_annotated_entities(entries, source))
    intents = [_validate_intent(entry, index, source, domain) for index, entry in enumerate(entries)]
    _check_unique_tags(intents, source)
    _check_context_filters(intents, source)
    if not any(intent.patterns for intent in intents if intent.tag != FALLBACK_TAG):
        raise IntentsError(f"{source}: no intent has patterns to train on")
    return intents, domain


def check_hidden_characters(value: Any, source: str, where: str = "") -> None:
    """Raise IntentsError for the first string (key or value) holding a bidi or zero-width character.

    Every string of the file is checked, so a field added later is covered too.
    """
    if isinstance(value, str):
        if found := find_hidden_character(value):
            position, name = found
            raise IntentsError(
                f"{source}: {where or 'a string'}: {name} at character {position} changes how the text "
                "reads without showing; remove it"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_hidden_characters(key, source, f"{where} key {key!r}".strip())
            check_hidden_characters(item, source, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_hidden_characters(item, source, f"{where}[{index}]")


def validate_language(raw: Any, source: str = "intents") -> str:
    """Return the supported language code of the parsed JSON's ``language``; raise IntentsError."""
    tag = raw.get("language", DEFAULT_LANGUAGE) if isinstance(raw, dict) else DEFAULT_LANGUAGE
    try:
        return language_code(tag)
    except ValueError as exc:
        raise IntentsError(f'{source}: "language": {exc}') from exc


def validate_widget_strings(raw: Any, source: str = "intents") -> dict[str, str]:
    """Return the parsed JSON's ``widget`` texts (none if absent); raise IntentsError naming the fault."""
    strings = raw.get("widget", {}) if isinstance(raw, dict) else {}
    if not isinstance(strings, dict):
        raise IntentsError(f'{source}: "widget" must be an object of texts')
    for key, value in strings.items():
        if key not in WIDGET_STRINGS:
            known = ", ".join(sorted(WIDGET_STRINGS))
            raise IntentsError(f'{source}: "widget": unknown text {key!r}; known: {known}')
        if not isinstance(value, str):
            raise IntentsError(f'{source}: "widget": {key!r} must be a string')
    return dict(strings)


def _validate_intent(entry: Any, index: int, source: str, domain: Domain) -> Intent:
    if not isinstance(entry, dict):
        raise IntentsError(f"{source}: intent {index}: expected an object")
    tag = entry.get("tag")
    if not isinstance(tag, str) or not tag.strip():
        raise IntentsError(f'{source}: intent {index}: "tag" is missing or empty')
    where = f"{source}: intent {index} ({tag!r})"
    for key in sorted(set(entry) - KNOWN_KEYS):
        log.warning("%s: unknown key %r is ignored", where, key)
    annotated = _string_list(entry.get("patterns"), f'{where}: "patterns"')
    patterns = [_parse_pattern(pattern, where).text for pattern in annotated]
    if not patterns and tag != FALLBACK_TAG:
        raise IntentsError(f'{where}: "patterns" is empty; only "{FALLBACK_TAG}" may have none')
    if "responses" not in entry:
        raise IntentsError(f'{where}: "responses" is missing')
    responses = _string_list(entry["responses"], f'{where}: "responses"')
    if not responses:
        raise IntentsError(f'{where}: "responses" is empty')
    quick_replies = _string_list(entry.get("quick_replies", []), f'{where}: "quick_replies"')
    require = validate_requests(entry.get("require", []), domain.slots, where)
    action = validate_action(entry["action"], where) if "action" in entry else None
    for template in (
        *responses,
        *(request.question for request in require),
        getattr(action, "fallback", None),
    ):
        if template:
            check_template(template, domain.slots, where)
    if not isinstance(entry.get("handoff", False), bool):
        raise IntentsError(f'{where}: "handoff" must be true or false')
    return Intent(
        tag=tag,
        patterns=tuple(patterns),
        responses=tuple(responses),
        context_set=_optional_string(entry, "context_set", where),
        context_filter=_optional_string(entry, "context_filter", where),
        quick_replies=tuple(quick_replies),
        require=require,
        action=action,
        handoff=entry.get("handoff", False),
        annotated=tuple(annotated) if patterns != annotated else (),
    )


def _parse_pattern(pattern: str, where: str) -> AnnotatedText:
    try:
        return parse_annotated(pattern)
    except AnnotationError as exc:
        raise IntentsError(f"{where}: pattern {pattern!r}: {exc}") from exc


def _annotated_entities(entries: list[Any], source: str) -> tuple[str, ...]:
    """Return the entity names the patterns annotate, checked: they need no other declaration."""
    first_use: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("patterns"), list):
            continue  # _validate_intent names that fault
        where = f"{source}: intent {index} ({entry.get('tag')!r})"
        for pattern in entry["patterns"]:
            if isinstance(pattern, str) and has_markup(pattern):
                for annotation in _parse_pattern(pattern, where).annotations:
                    first_use.setdefault(annotation.entity, f"intent {entry.get('tag')!r}")
    try:
        check_entity_names(first_use)
    except AnnotationError as exc:
        raise IntentsError(f"{source}: {exc}") from exc
    return tuple(sorted(first_use))


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise IntentsError(f"{where} must be a list of non-empty strings")
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise IntentsError(f"{where}[{position}] must be a non-empty string")
    return value


def _optional_string(entry: dict[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise IntentsError(f'{where}: "{key}" must be a string')
    return value


def _check_unique_tags(intents: list[Intent], source: str) -> None:
    first_index: dict[str, int] = {}
    for index, intent in enumerate(intents):
        if intent.tag in first_index:
            raise IntentsError(
                f"{source}: intent {index} ({intent.tag!r}): duplicate tag, "
                f"already used by intent {first_index[intent.tag]}"
            )
        first_index[intent.tag] = index


def _check_context_filters(intents: list[Intent], source: str) -> None:
    contexts_set = {intent.context_set for intent in intents if intent.context_set}
    for index, intent in enumerate(intents):
        if intent.context_filter and intent.context_filter not in contexts_set:
            raise IntentsError(
                f'{source}: intent {index} ({intent.tag!r}): "context_filter" '
                f"{intent.context_filter!r} is never set by any intent's context_set"
            )


def fingerprint_data(
    intents: list[Intent], domain: Domain | None = None, widget_strings: dict[str, str] | None = None
) -> str:
    """Return a SHA-256 of the data's canonical JSON, to tell which data a model was trained on.

    The entities, slots and widget texts count too: they change what the bot does, not its
    weights. Absent or empty, they leave the hash of the intents alone unchanged.
    """
    sections = {**(domain or Domain()).to_dict(), "widget": widget_strings or {}}
    document: Any = [intent.to_dict() for intent in intents]
    if any(sections.values()):
        document = {"intents": document, **{key: value for key, value in sections.items() if value}}
    canonical = json.dumps(document, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
