"""Pick entity values (order numbers, product names) out of a message, with no model.

A bot declares them in the top-level ``entities`` object of intents.json::

    "entities": {
        "order_number": {"regex": "(?:[a-z]{1,3}-?)?\\d{4,6}"},
        "product": {"lookup": {"coffee mug": ["mug", "cup"], "crème brûlée torch": []}}
    }

A regex entity matches case-insensitively as a whole word: the pattern is wrapped in lookarounds so
"12345" is not found inside "x123456". Regex entities run on RE2, whose time is linear in the text
for any pattern, so no pattern can stall a worker; the few constructs RE2 lacks (lookarounds,
backreferences, atomic groups) are refused at validation.
A lookup entity matches any of its values or their synonyms, case- and accent-insensitively, whole
words only, the longest first; the extracted value is the canonical one. Every pattern is compiled
once, when the extractor is built; lookups compile to one trie-shaped regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

# The regex parser is how the safety check sees nesting (private modules, stable since 3.11).
from re import _constants as sre_constants
from re import _parser as sre_parser
from typing import Any

import re2
import regex

from chatbot.errors import IntentsError
from chatbot.text.tokens import fold

REGEX_EXTRACTOR = "regex"
LOOKUP_EXTRACTOR = "lookup"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
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
    except (re.error, UnsupportedRegexError) as exc:
        raise IntentsError(f'{where}: "regex" is not a valid regular expression: {exc}') from exc
    if compiled.body.fullmatch(""):
        raise IntentsError(f'{where}: "regex" matches the empty string; it must match at least one character')
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


class UnsupportedRegexError(ValueError):
    """A pattern uses a construct the linear-time engine lacks (lookarounds, backreferences)."""


@dataclass(frozen=True)
class WholeWordRegex:
    """An author's pattern on RE2, found only as a whole word; ``body`` is the bare pattern."""

    body: Any  # re2._Regexp: the pattern alone
    word: Any  # re2._Regexp: the pattern after the start of the text or a non-word character
    word_after: Any  # re2._Regexp: the same, after a non-word character only

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Yield the (start, end) of each whole-word match, left to right, never overlapping."""
        # RE2 works on UTF-8. The text is encoded once here: given a str, the binding would encode
        # it again for every search, quadratic in a message full of matches. "surrogatepass" keeps
        # a lone surrogate (which JSON can carry) from raising; it matches nothing.
        encoded = text.encode("utf-8", "surrogatepass")
        offsets = _CharOffsets(encoded, is_ascii=len(encoded) == len(text))
        match = self.word.search(encoded)
        while match is not None:
            start, end = match.span(1)
            if end == start:  # only a pattern of bare anchors (\\b) can; nothing to extract
                match = self.word_after.search(encoded, start + 1) if start < len(encoded) else None
                continue
            char_start, char_end = offsets.to_char(start), offsets.to_char(end)
            yield char_start, char_end
            # The next search starts on this match's last character: the boundary before the next
            # match may be that character (a match may itself be punctuation) but no later one.
            last = text[char_end - 1].encode("utf-8", "surrogatepass")
            match = self.word_after.search(encoded, end - len(last))


class _CharOffsets:
    """Turn increasing byte offsets into UTF-8 text into character offsets, in one pass overall."""

    def __init__(self, encoded: bytes, is_ascii: bool) -> None:
        self.encoded = encoded
        self.is_ascii = is_ascii
        self.byte_offset = 0
        self.char_offset = 0

    def to_char(self, byte_offset: int) -> int:
        """Return the character offset of a byte offset no smaller than the last one asked."""
        if self.is_ascii:
            return byte_offset
        between = self.encoded[self.byte_offset : byte_offset].decode("utf-8", "surrogatepass")
        self.byte_offset, self.char_offset = byte_offset, self.char_offset + len(between)
        return self.char_offset


def compile_regex(pattern: str) -> WholeWordRegex:
    """Compile an author's pattern for RE2: whole words only, case-insensitive, linear time.

    Python's parser reads the pattern (so authors write the syntax they know, and validation names
    Python's errors); the tree is written out again in RE2 syntax with Python's Unicode meaning of
    ``\\d``, ``\\w`` and ``\\s``. RE2 runs in time linear in the text whatever the pattern, which
    closes the whole class of slow patterns (nested or adjacent repeats such as ``\\D*\\D*1``)
    instead of guessing which ones are slow. Raises ``re.error`` or ``UnsupportedRegexError``.
    """
    parsed = sre_parser.parse(pattern)
    body = _to_re2(parsed, parsed.state.flags)
    # RE2 has no lookarounds: the boundary characters around a match are consumed but kept out of
    # group 1, and ``spans`` resumes the search so that they are never skipped.
    after = rf"({body})(?:$|[^{_WORD}])"
    return WholeWordRegex(
        _re2_compile(f"(?i){body}"),
        _re2_compile(f"(?i)(?:^|[^{_WORD}]){after}"),
        _re2_compile(f"(?i)[^{_WORD}]{after}"),
    )


def _re2_compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # the error is raised (and named at validation), not printed
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:  # e.g. a repeat count over 1,000, or a program over RE2's memory budget
        message = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise UnsupportedRegexError(message) from exc


# Python's \\w, \\d and \\s on str are Unicode; RE2's are ASCII, so the classes are spelled out.
_WORD = r"\p{L}\p{N}_"
_SPACE = r"\t\n\x0b\f\r\x1c-\x1f \x85\p{Z}"
_IN_CLASS = {
    sre_constants.CATEGORY_DIGIT: r"\p{Nd}",
    sre_constants.CATEGORY_NOT_DIGIT: r"\P{Nd}",
    sre_constants.CATEGORY_WORD: _WORD,
    sre_constants.CATEGORY_SPACE: _SPACE,
}
_NEGATED_ONLY = {sre_constants.CATEGORY_NOT_WORD: _WORD, sre_constants.CATEGORY_NOT_SPACE: _SPACE}
_ASCII_IN_CLASS = {
    sre_constants.CATEGORY_DIGIT: "0-9",
    sre_constants.CATEGORY_NOT_DIGIT: r"\x00-/:-\x{10ffff}",
    sre_constants.CATEGORY_WORD: "0-9A-Za-z_",
    sre_constants.CATEGORY_SPACE: r"\t\n\x0b\f\r ",
}
_ASCII_NEGATED_ONLY = {
    sre_constants.CATEGORY_NOT_WORD: "0-9A-Za-z_",
    sre_constants.CATEGORY_NOT_SPACE: r"\t\n\x0b\f\r ",
}
_ANCHORS = {
    sre_constants.AT_BEGINNING: "^",
    sre_constants.AT_BEGINNING_STRING: r"\A",
    sre_constants.AT_END: "$",  # unlike Python's, not before a final newline
    sre_constants.AT_END_STRING: r"\z",
    sre_constants.AT_BOUNDARY: r"\b",  # ASCII word boundary in RE2
    sre_constants.AT_NON_BOUNDARY: r"\B",
}
_MULTILINE_ANCHORS = {sre_constants.AT_BEGINNING: "(?m:^)", sre_constants.AT_END: "(?m:$)"}
_UNSUPPORTED = {
    sre_constants.ASSERT: "lookarounds such as (?=...) and (?<=...)",
    sre_constants.ASSERT_NOT: "lookarounds such as (?!...) and (?<!...)",
    sre_constants.GROUPREF: "backreferences such as \\1",
    sre_constants.GROUPREF_EXISTS: "conditional groups such as (?(1)...)",
    getattr(sre_constants, "ATOMIC_GROUP", "ATOMIC_GROUP"): "atomic groups (?>...)",
    getattr(sre_constants, "POSSESSIVE_REPEAT", "POSSESSIVE_REPEAT"): "possessive repeats such as a*+",
}


def _to_re2(items: Any, flags: int) -> str:
    """Write a parsed pattern in RE2 syntax; every group becomes non-capturing."""
    return "".join(_piece_to_re2(op, argument, flags) for op, argument in items)


def _piece_to_re2(op: Any, argument: Any, flags: int) -> str:
    if op in _UNSUPPORTED:
        raise UnsupportedRegexError(
            f"{_UNSUPPORTED[op]} are not supported (entity patterns run on a linear-time engine)"
        )
    if op == sre_constants.LITERAL:
        return _char(argument)
    if op == sre_constants.NOT_LITERAL:
        return f"[^{_char(argument)}]"
    if op == sre_constants.ANY:
        return "(?s:.)" if flags & re.DOTALL else "."
    if op == sre_constants.IN:
        return _class_to_re2(argument, flags)
    if op == sre_constants.AT:
        return (_MULTILINE_ANCHORS if flags & re.MULTILINE else {}).get(argument) or _ANCHORS[argument]
    if op == sre_constants.BRANCH:
        return "(?:" + "|".join(_to_re2(branch, flags) for branch in argument[1]) + ")"
    if op == sre_constants.SUBPATTERN:
        _group, add_flags, del_flags, body = argument
        return f"(?:{_to_re2(body, (flags | add_flags) & ~del_flags)})"
    if op in _REPEATS:
        low, high, body = argument
        bounds = f"{{{low},}}" if high == _UNBOUNDED else f"{{{low},{high}}}"
        lazy = "?" if op == sre_constants.MIN_REPEAT else ""
        return f"(?:{_to_re2(body, flags)}){bounds}{lazy}"
    raise UnsupportedRegexError(f"the construct {op} is not supported")  # pragma: no cover - none known


def _class_to_re2(items: Any, flags: int) -> str:
    negated = bool(items) and items[0][0] == sre_constants.NEGATE
    in_class, negated_only = (
        (_ASCII_IN_CLASS, _ASCII_NEGATED_ONLY) if flags & re.ASCII else (_IN_CLASS, _NEGATED_ONLY)
    )
    members, excluded = [], []
    for op, argument in items[negated:]:
        if op == sre_constants.LITERAL:
            members.append(_char(argument))
        elif op == sre_constants.RANGE:
            members.append(f"{_char(argument[0])}-{_char(argument[1])}")
        elif op == sre_constants.CATEGORY and argument in in_class:
            members.append(in_class[argument])
        elif op == sre_constants.CATEGORY and argument in negated_only:
            excluded.append(negated_only[argument])
        else:  # pragma: no cover - the parser puts nothing else in a class
            raise UnsupportedRegexError(f"the class member {op} is not supported")
    if not excluded:
        return f"[{'^' if negated else ''}{''.join(members)}]"
    if negated or len(excluded) > 1:
        # [^\\W\\d] and [\\W\\S] would need set difference, which RE2's classes lack.
        raise UnsupportedRegexError(
            r"\W or \S inside a negated class (or both in one class) are not supported"
        )
    alternatives = [f"[^{excluded[0]}]", *([f"[{''.join(members)}]"] if members else [])]
    return "(?:" + "|".join(alternatives) + ")"


def _char(code_point: int) -> str:
    """Spell one character so that RE2 reads it literally, inside or outside a class."""
    ch = chr(code_point)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code_point:x}}}"


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
            Entity(name, text[start:end], start, end, REGEX_EXTRACTOR)
            for name, regex in self._regexes
            for start, end in regex.spans(text)
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
