"""Pick entity values (order numbers, product names) out of a message, with no model and no new dependency.

A bot declares them in the top-level ``entities`` object of intents.json::

    "entities": {
        "order_number": {"regex": "(?:[a-z]{1,3}-?)?\\d{4,6}"},
        "product": {"lookup": {"coffee mug": ["mug", "cup"], "crème brûlée torch": []}}
    }

A regex entity matches case-insensitively as a whole word: the pattern is wrapped in lookarounds so
"12345" is not found inside "x123456". A pattern that could backtrack badly is refused at validation.
A lookup entity matches any of its values or their synonyms, case- and accent-insensitively, whole
words only, the longest first; the extracted value is the canonical one. Every pattern is compiled
once, when the extractor is built; lookups compile to one trie-shaped regex.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

# The regex parser is how the safety check sees nesting (private modules, stable since 3.11).
from re import _constants as sre_constants
from re import _parser as sre_parser
from typing import Any

import regex

from chatbot.errors import IntentsError
from chatbot.text.tokens import fold

REGEX_EXTRACTOR = "regex"
LOOKUP_EXTRACTOR = "lookup"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Small steps first: exponential backtracking doubles per character, so it shows before it hurts.
PROBE_LENGTHS = (*range(8, 33, 2), 64, 128, 256, 512, 1000)  # up to the default message limit
PROBE_BUDGET_SECONDS = 0.02  # one probe slower than this on a 1,000-character text is too slow
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
_UNBOUNDED = sre_constants.MAXREPEAT


@dataclass(frozen=True)
class Entity:
    """One value found in a message; ``start``/``end`` index the original text."""

    entity: str
    value: str
    start: int
    end: int
    extractor: str

    def to_dict(self) -> dict[str, Any]:
        """Return the entity as the API shows it (Rasa's ``/model/parse`` shape)."""
        return {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "extractor": self.extractor,
        }


@dataclass(frozen=True)
class EntityDefinition:
    """How to find one entity: a regex, or a lookup table of canonical value -> synonyms."""

    name: str
    regex: str | None = None
    lookup: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the definition as it appears in intents.json."""
        if self.regex is not None:
            return {"regex": self.regex}
        return {"lookup": {value: list(synonyms) for value, synonyms in self.lookup}}

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> EntityDefinition:
        """Rebuild a definition written by ``to_dict`` (already validated)."""
        if "regex" in raw:
            return cls(name, regex=raw["regex"])
        return cls(name, lookup=tuple((value, tuple(synonyms)) for value, synonyms in raw["lookup"].items()))


def validate_entities(raw: Any, source: str = "intents") -> tuple[EntityDefinition, ...]:
    """Check the top-level ``entities`` object; raise IntentsError naming the entity at fault."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise IntentsError(f'{source}: "entities" must be an object of entity name -> definition')
    definitions = []
    for name, spec in raw.items():
        where = f"{source}: entity {name!r}"
        if not NAME_PATTERN.fullmatch(name):
            raise IntentsError(f"{where}: a name is letters, digits and _ (not starting with a digit)")
        if not isinstance(spec, dict) or len(set(spec) & {"regex", "lookup"}) != 1 or len(spec) != 1:
            raise IntentsError(
                f'{where}: expected exactly one of {{"regex": "..."}} or {{"lookup": {{...}}}}'
            )
        if "regex" in spec:
            definitions.append(EntityDefinition(name, regex=_validate_regex(spec["regex"], where)))
        else:
            definitions.append(EntityDefinition(name, lookup=_validate_lookup(spec["lookup"], where)))
    return tuple(definitions)


def _validate_regex(pattern: Any, where: str) -> str:
    if not isinstance(pattern, str) or not pattern.strip():
        raise IntentsError(f'{where}: "regex" must be a non-empty string')
    try:
        compiled = compile_regex(pattern)
    except re.error as exc:
        raise IntentsError(f'{where}: "regex" is not a valid regular expression: {exc}') from exc
    if compiled.fullmatch(""):
        raise IntentsError(f'{where}: "regex" matches the empty string; it must match at least one character')
    if reason := unsafe_regex_reason(pattern):
        raise IntentsError(f'{where}: "regex" could backtrack catastrophically ({reason}); rewrite it')
    return pattern


def _validate_lookup(table: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(table, dict) or not table:
        raise IntentsError(f'{where}: "lookup" must be a non-empty object of value -> list of synonyms')
    owner: dict[str, str] = {}
    entries = []
    for value, synonyms in table.items():
        if not value.strip() or not isinstance(synonyms, list):
            raise IntentsError(
                f"{where}: lookup value {value!r} needs a non-empty name and a list of synonyms"
            )
        for phrase in (value, *synonyms):
            if not isinstance(phrase, str) or not fold(phrase).strip():
                raise IntentsError(f"{where}: synonyms of {value!r} must be non-empty strings")
            if owner.setdefault(fold(phrase).strip(), value) != value:
                raise IntentsError(
                    f"{where}: {phrase!r} stands for both {owner[fold(phrase).strip()]!r} and {value!r}"
                )
        entries.append((value, tuple(synonyms)))
    return tuple(entries)


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile an author's pattern to match whole words only, case-insensitively."""
    # Lookarounds rather than \b: \b fails next to a pattern that starts or ends with punctuation.
    return re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE)


def unsafe_regex_reason(pattern: str) -> str | None:
    """Say why a pattern could backtrack catastrophically, or None when it is safe.

    Two checks: a static one for the classic shapes (a quantifier over something that can itself
    repeat, such as ``(a+)+``; an unbounded repeat of alternatives that can start alike, such as
    ``(a|ab)*``) and a timed probe on text built from the pattern's own characters, growing up to
    1,000 characters and stopping at the first probe over budget, so a bad pattern costs tens of ms.
    """
    parsed = sre_parser.parse(pattern)
    if reason := _nested_quantifier(parsed):
        return reason
    return _slow_probe(compile_regex(pattern), "".join(dict.fromkeys(_sample_chars(parsed))) or "a")


def _nested_quantifier(items: Any, inside_repeat: str | None = None) -> str | None:
    for op, argument in items:
        if op in _REPEATS:
            low, high, body = argument
            repeats = high > 1
            if repeats and inside_repeat == "unbounded" and low != high:
                return "a repeated group contains a variable repeat, as in (a+)+"
            if repeats and inside_repeat and high == _UNBOUNDED:
                return "a repeated group contains an unbounded repeat, as in (a+){2,5}"
            if high == _UNBOUNDED and _has_overlapping_branches(body):
                return "an unbounded repeat of alternatives that can match the same text, as in (a|ab)*"
            state = "unbounded" if high == _UNBOUNDED else ("bounded" if repeats else inside_repeat)
            if reason := _nested_quantifier(body, state):
                return reason
        elif op == sre_constants.SUBPATTERN:
            if reason := _nested_quantifier(argument[-1], inside_repeat):
                return reason
        elif op == sre_constants.BRANCH:
            for branch in argument[1]:
                if reason := _nested_quantifier(branch, inside_repeat):
                    return reason
    return None


def _has_overlapping_branches(items: Any) -> bool:
    for op, argument in items:
        if op == sre_constants.SUBPATTERN:
            return _has_overlapping_branches(argument[-1])
        if op == sre_constants.BRANCH:
            starts = [_first_chars(branch) for branch in argument[1]]
            return any(
                first is None or other is None or first & other
                for index, first in enumerate(starts)
                for other in starts[index + 1 :]
            )
        return False
    return False


def _first_chars(items: Any) -> frozenset[int] | None:
    """Return the code points a branch can start with, or None when that is hard to tell (any)."""
    if not items:
        return None
    op, argument = items[0]
    if op == sre_constants.LITERAL:
        return frozenset({argument, ord(chr(argument).lower()), ord(chr(argument).upper())})
    if op == sre_constants.SUBPATTERN:
        return _first_chars(argument[-1])
    return None


_CATEGORY_SAMPLES = {
    sre_constants.CATEGORY_DIGIT: "1",
    sre_constants.CATEGORY_WORD: "a",
    sre_constants.CATEGORY_SPACE: " ",
}


def _sample_chars(items: Any) -> list[str]:
    """Return characters the pattern's pieces match: the text a probe repeats to stress it."""
    chars: list[str] = []
    for op, argument in items:
        if op == sre_constants.LITERAL:
            chars.append(chr(argument))
        elif op == sre_constants.ANY:
            chars.append("a")
        elif op == sre_constants.IN:
            chars.extend(_sample_chars(argument))
        elif op == sre_constants.RANGE:
            chars.append(chr(argument[0]))
        elif op == sre_constants.CATEGORY and argument in _CATEGORY_SAMPLES:
            chars.append(_CATEGORY_SAMPLES[argument])
        elif op in _REPEATS:
            chars.extend(_sample_chars(argument[2]))
        elif op == sre_constants.SUBPATTERN:
            chars.extend(_sample_chars(argument[-1]))
        elif op == sre_constants.BRANCH:
            for branch in argument[1]:
                chars.extend(_sample_chars(branch))
    return chars


def _slow_probe(compiled: re.Pattern[str], alphabet: str) -> str | None:
    # Each probe is a run of one character, after any one character (a pattern's literal prefix), and
    # the whole alphabet cycled; the last character is one no pattern expects, so every match fails.
    chars = alphabet[:6]
    shapes = [(head, body) for head in ("", *chars) for body in chars] + [("", alphabet)]
    for length in PROBE_LENGTHS:
        for head, body in shapes:
            text = head + (body * length)[: length - 1 - len(head)] + "\x00"
            if (elapsed := _search_seconds(compiled, text)) > PROBE_BUDGET_SECONDS:
                # The best of three: a busy machine can stall one search, not three in a row.
                elapsed = min(elapsed, _search_seconds(compiled, text), _search_seconds(compiled, text))
                if elapsed > PROBE_BUDGET_SECONDS:
                    return f"{elapsed * 1000:.0f} ms to search {length} characters"
    return None


def _search_seconds(compiled: re.Pattern[str], text: str) -> float:
    started = time.perf_counter()
    compiled.search(text)
    return time.perf_counter() - started


def fold_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """Fold a text and map each folded character to its index in the original (None: the same).

    Each letter is folded with the marks that follow it, so a decomposed accent ("e" + U+0301)
    folds as the composed one does.
    """
    if text.isascii():  # ASCII folds character for character: no map needed
        return text.lower(), None
    clusters = [(match.start(), _fold_cluster(match.group())) for match in _CLUSTER.finditer(text)]
    folded = "".join(piece for _, piece in clusters)
    if len(clusters) == len(text) and len(folded) == len(text):  # one for one ("é" -> "e")
        return folded, None
    origin = [start for start, piece in clusters for _ in piece]
    origin.append(len(text))
    return folded, origin


_CLUSTER = regex.compile(r"\P{M}\p{M}*|\p{M}+")  # a character and the marks that belong to it


@lru_cache(maxsize=4096)
def _fold_cluster(cluster: str) -> str:
    return fold(cluster)


class EntityExtractor:
    """Find every declared entity in a message; the patterns are compiled once, here."""

    def __init__(self, definitions: tuple[EntityDefinition, ...] = ()) -> None:
        self.definitions = definitions
        self._regexes = [
            (definition.name, compile_regex(definition.regex))
            for definition in definitions
            if definition.regex is not None
        ]
        self._canonical: dict[str, tuple[str, str]] = {}  # folded phrase -> (entity, value)
        for definition in definitions:
            for value, synonyms in definition.lookup:
                for phrase in (value, *synonyms):
                    self._canonical[fold(phrase).strip()] = (definition.name, value)
        self._lookup = compile_lookup(self._canonical) if self._canonical else None

    def extract(self, text: str) -> list[Entity]:
        """Return the entities in a text, by position; where two overlap, the longer one wins."""
        found = [
            Entity(name, match.group(), match.start(), match.end(), REGEX_EXTRACTOR)
            for name, regex in self._regexes
            for match in regex.finditer(text)
        ]
        if self._lookup is not None:
            folded, origin = fold_with_offsets(text)
            for match in self._lookup.finditer(folded):
                name, value = self._canonical[match.group()]
                start, end = (match.start(), match.end()) if origin is None else _original_span(origin, match)
                found.append(Entity(name, value, start, end, LOOKUP_EXTRACTOR))
        return _without_overlaps(found) if len(found) > 1 else found


def compile_lookup(phrases: Iterable[str]) -> re.Pattern[str]:
    """Compile phrases into one whole-word regex that prefers the longest phrase at a position.

    The phrases form a trie (``mug`` and ``mug rack`` become ``mug(?: rack)?``): the greedy optional
    tries the longer phrase first, and a position is rejected after one character instead of one
    try per phrase. The leading lookahead lets the engine skip to characters that start a phrase.
    With 600 phrases this is about 50 times faster than a plain alternation.
    """
    trie: dict[str, dict] = {}
    for phrase in phrases:
        node = trie
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}  # a phrase ends here
    first = "".join(sorted(re.escape(ch) for ch in trie if ch))
    return re.compile(rf"(?=[{first}])(?<!\w)(?:{_trie_pattern(trie)})(?!\w)")


def _trie_pattern(node: dict[str, dict]) -> str:
    branches = [re.escape(ch) + _trie_pattern(child) for ch, child in sorted(node.items()) if ch]
    if not branches:
        return ""
    group = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{group})?" if "" in node else group


def _original_span(origin: list[int], match: re.Match[str]) -> tuple[int, int]:
    # origin ends with len(text), so the character after the match always has an entry.
    return origin[match.start()], origin[match.end()]


def _without_overlaps(found: list[Entity]) -> list[Entity]:
    kept: list[Entity] = []
    for entity in sorted(found, key=lambda item: (item.start, item.start - item.end)):
        if not kept or entity.start >= kept[-1].end:
            kept.append(entity)
    return kept
