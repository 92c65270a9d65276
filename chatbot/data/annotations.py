"""Read entity annotations in training phrases, in the syntax Rasa users already write.

``"book a table for [four](party_size) on [Friday](date)"`` marks "four" as a ``party_size`` and
"Friday" as a ``date``. A synonym gives the value to extract instead of the text:
``[NYC](city:New York)`` or Rasa's object form ``[NYC]{"entity": "city", "value": "New York"}``.
``\\[`` and ``\\]`` write literal brackets (``\\\\`` a literal backslash). The intent classifier
sees only the plain text ("book a table for four on Friday"); the entity tagger learns the spans.

Every bracket must belong to an annotation: a stray ``[`` or ``]`` is an error rather than a
silently literal character, so a typo in an annotation never trains the classifier on markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
ESCAPABLE = frozenset("[]\\")


class AnnotationError(ValueError):
    """A phrase's annotations are malformed; the message says what is wrong and where."""


@dataclass(frozen=True)
class Annotation:
    """One annotated span of a phrase's plain text; ``value`` is the synonym to extract, if any."""

    entity: str
    start: int
    end: int
    value: str | None = None


@dataclass(frozen=True)
class AnnotatedText:
    """A phrase as the classifier sees it, and its annotated spans in order."""

    text: str
    annotations: tuple[Annotation, ...] = ()


def has_markup(pattern: str) -> bool:
    """Say whether a phrase may hold annotations or escapes (most do not: they skip the parser)."""
    return "[" in pattern or "]" in pattern or "\\" in pattern


def parse_annotated(pattern: str) -> AnnotatedText:
    """Return a phrase's plain text and spans; raise AnnotationError for malformed annotations."""
    if not has_markup(pattern):
        return AnnotatedText(pattern)
    plain: list[str] = []
    annotations: list[Annotation] = []
    length = 0  # characters of plain text so far
    open_at: int | None = None  # plain-text offset of the unclosed "["
    index = 0
    while index < len(pattern):
        ch = pattern[index]
        if ch == "\\" and index + 1 < len(pattern) and pattern[index + 1] in ESCAPABLE:
            plain.append(pattern[index + 1])
            length += 1
            index += 2
            continue
        if ch == "[":
            if open_at is not None:
                raise AnnotationError(
                    f"an annotation inside another at character {index}: annotations may not overlap"
                )
            open_at = length
            index += 1
            continue
        if ch == "]":
            if open_at is None:
                raise AnnotationError(
                    f"unbalanced brackets: ']' at character {index} has no '[' (write \\] for a literal one)"
                )
            entity, value, index = _read_label(pattern, index + 1)
            span_text = "".join(plain)[open_at:length]
            if not span_text.strip():
                raise AnnotationError(f"empty annotation for {entity!r}: mark at least one character")
            if span_text != span_text.strip():
                raise AnnotationError(f"annotation {span_text!r} ({entity}) starts or ends with a space")
            annotations.append(Annotation(entity, open_at, length, value))
            open_at = None
            continue
        plain.append(ch)
        length += 1
        index += 1
    if open_at is not None:
        raise AnnotationError("unbalanced brackets: a '[' is never closed (write \\[ for a literal one)")
    text = "".join(plain)
    if not text.strip():
        raise AnnotationError("no text left once the annotations are read")
    return AnnotatedText(text, tuple(annotations))


def _read_label(pattern: str, index: int) -> tuple[str, str | None, int]:
    """Read ``(name)``, ``(name:value)`` or ``{"entity": ..., "value": ...}`` after a ``]``."""
    opener = pattern[index] if index < len(pattern) else ""
    if opener == "(":
        close = pattern.find(")", index)
        if close < 0:
            raise AnnotationError(f"unbalanced brackets: '(' at character {index} is never closed")
        label = pattern[index + 1 : close]
        entity, _, value = label.partition(":")
        synonym: str | None = value.strip() if ":" in label else None
        if synonym == "":
            raise AnnotationError(f"annotation ({label}) has an empty synonym after ':'")
        return _checked_name(entity.strip()), synonym, close + 1
    if opener == "{":
        try:
            raw, end = json.JSONDecoder().raw_decode(pattern, index)
        except json.JSONDecodeError as exc:
            raise AnnotationError(
                f"the object after ']' at character {index} is not valid JSON ({exc.msg})"
            ) from exc
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("entity"), str)
            or set(raw) - {"entity", "value"}
        ):
            raise AnnotationError('the object after \']\' must be {"entity": name} with an optional "value"')
        value = raw.get("value")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise AnnotationError('"value" in an annotation must be a non-empty string')
        return _checked_name(raw["entity"]), value, end
    raise AnnotationError(
        f"'[...]' at character {index} must be followed by (entity) or {{\"entity\": ...}} (write \\[ for a literal bracket)"
    )


def _checked_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AnnotationError(
            f"entity name {name!r}: a name is letters, digits and _ (not starting with a digit)"
        )
    return name


def escape_markup(text: str) -> str:
    """Return plain text written so that it reads back as itself: no bracket starts an annotation."""
    return "".join("\\" + ch if ch in ESCAPABLE else ch for ch in text)


def check_entity_names(names: dict[str, str]) -> None:
    """Refuse entity names that differ only in case (``City`` and ``city``): one of them is a typo.

    ``names`` maps each name to where it was first used, for the message.
    """
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise AnnotationError(
                f"entity names {other!r} ({names[other]}) and {name!r} ({names[name]}) differ only in case"
            )
