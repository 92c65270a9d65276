"""Entity extraction: regex and lookup entities, offsets into the original text, linear-time regexes."""

from __future__ import annotations

import re
import time

import pytest

from chatbot.data.entities import EntityExtractor, validate_entities
from chatbot.errors import IntentsError
from tests.support import record_figures

ENTITIES = {
    "order_number": {"regex": r"[a-z]{1,3}-?\d{4,6}|\d{5,6}"},
    "product": {"lookup": {"crème brûlée torch": ["torch"], "coffee mug": ["mug", "cup"], "mug rack": []}},
}


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor(validate_entities(ENTITIES))


def found(extractor: EntityExtractor, text: str) -> list[tuple[str, str, str, str]]:
    """Return (entity, value, the text at its offsets, extractor) for each entity found."""
    return [(e.entity, e.value, text[e.start : e.end], e.extractor) for e in extractor.extract(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where is order 12345", [("order_number", "12345", "12345", "regex")]),
        ("it's ACM-20931!", [("order_number", "ACM-20931", "ACM-20931", "regex")]),
        ("acm-20931", [("order_number", "acm-20931", "acm-20931", "regex")]),
        ("x1234567 and 1234", []),  # whole words only: no number inside a longer one
        ("A CREME BRULEE torch", [("product", "crème brûlée torch", "CREME BRULEE torch", "lookup")]),
        (
            "Ünïcode first: Crème Brûlée Torch",
            [("product", "crème brûlée torch", "Crème Brûlée Torch", "lookup")],
        ),
        ("e\u0301e\u0301 a Mug", [("product", "coffee mug", "Mug", "lookup")]),  # decomposed accents
        ("the mug rack", [("product", "mug rack", "mug rack", "lookup")]),  # longest first
        ("mugs and cups", []),
        (
            "a cup for order 55512",
            [("product", "coffee mug", "cup", "lookup"), ("order_number", "55512", "55512", "regex")],
        ),
        ("ﬁve ß then torch", [("product", "crème brûlée torch", "torch", "lookup")]),  # folds change length
    ],
)
def test_extraction(extractor: EntityExtractor, text: str, expected: list) -> None:
    assert found(extractor, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("अलार्म लगाओ", [("thing", "अलार्म", "अलार्म", "lookup")]),
        ("अलारम लगाओ", []),  # without the virama it is another word
        ("เพิ่ม อีก", [("thing", "เพิ่ม", "เพิ่ม", "lookup")]),
        ("เพิม อีก", []),  # nor without the tone mark
        ("Éte\u0301", [("thing", "ete", "Éte\u0301", "lookup")]),  # Latin accents still fold
    ],
)
def test_lookups_keep_the_marks_of_other_scripts(text: str, expected: list) -> None:
    extractor = EntityExtractor(validate_entities({"thing": {"lookup": {"अलार्म": [], "เพิ่ม": [], "ete": []}}}))
    assert found(extractor, text) == expected


def test_no_entities_declared_finds_nothing() -> None:
    assert EntityExtractor().extract("order 12345") == []


# Patterns that backtrack badly on Python's engine: exponential (nested repeats, overlapping
# alternatives) and polynomial (adjacent repeats of the same class, which no static check saw).
SLOW_ON_BACKTRACKING = [
    r"\D*\D*1",
    r"[^\d]*[^\d]*\d",
    r"(?:order)?\D*(?:number|no\.?)?\D*\d{5}",
    r"(a+)+$",
    r"x(\w+\s?)*$",
    r"(a|b|ab)*c",
    r"\W*\W*\W*x",
    r"[^a]*[^a]*[^a]*a",
    r"\w",  # no backtracking, but a match every other character: each search must not rescan the text
]


def fastest_seconds(extractor: EntityExtractor, text: str, runs: int = 15) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        extractor.extract(text)
        timings.append(time.perf_counter() - started)
    return min(timings)  # the least disturbed run: other processes share the machine


@pytest.mark.parametrize("pattern", SLOW_ON_BACKTRACKING)
def test_no_pattern_is_slower_than_linear(pattern: str) -> None:
    """Eight times the text costs about eight times the time, whatever the pattern (RE2)."""
    extractor = EntityExtractor(validate_entities({"e": {"regex": pattern}}))
    # Each text is a long run that almost matches and then fails, the worst case for backtracking.
    short, long = (f"order no. {'b ' * length} é{chr(0)}" for length in (125, 1000))
    ratio = fastest_seconds(extractor, long) / fastest_seconds(extractor, short)
    assert ratio < 30, f"{pattern}: 8x the text took {ratio:.0f}x the time (quadratic is 64x)"


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"\d{5}(?=x)", "lookarounds"),
        (r"(?<!x)\d{5}", "lookarounds"),
        (r"(\d)\1{4}", "backreferences"),
        (r"(a)?(?(1)b|c)d", "conditional groups"),
        (r"(?>ab|a)c", "atomic groups"),
        (r"\d++x", "possessive repeats"),
        (r"\d{1001}", "invalid repetition size"),
        (r"[^\W\d]+", "inside a negated class"),
    ],
)
def test_constructs_the_linear_engine_lacks_are_refused(pattern: str, construct: str) -> None:
    with pytest.raises(IntentsError, match=f"entity 'e': \"regex\" is not a valid .*{construct}"):
        validate_entities({"e": {"regex": pattern}})


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-z]{1,3}-?\d{4,6}|\d{5,6}",
        r"(\d{1,3}\.){3}\d{1,3}",
        r"\w+@\w+\.com",
        r"a|ab",
        r"\d+?",
        r"[^\s]+x",
        r"colou?r",
        r"(?s:a.b)",
        r"(?x: a \s b )",
        r"[\W_]x",
        r"[\Wq]",
        r"\S+",
        r"(?a:\w+)",
        r"(?m:^\d+$)",
        r"\bno\b",
        r"[.$^*+?(){}|\\-]",
        r"ß|é+",
    ],
)
@pytest.mark.parametrize(
    "text",
    [
        "order acm-20931, 10.0.0.1 and me@mail.com!",
        "ab a abx colour color a\nb a b",
        "Crème brûlée ١٢٣٤٥ 12345 x_x _x",
        "12\n34 no. 7 $ ^ * + ? ( ) { } | \\ -",
        "STRASSE straße ÉÉ é",
        "",
    ],
)
def test_matches_agree_with_pythons_engine(pattern: str, text: str) -> None:
    """RE2 finds what Python's re finds, with Python's Unicode meaning of \\d, \\w and \\s."""
    python_regex = re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE)
    expected = [(m.group(), m.start(), m.end()) for m in python_regex.finditer(text) if m.group()]
    extractor = EntityExtractor(validate_entities({"e": {"regex": pattern}}))
    assert [(e.value, e.start, e.end) for e in extractor.extract(text)] == expected


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ([], '"entities" must be an object'),
        ({"1x": {"regex": "a"}}, "entity '1x': a name is"),
        ({"e": {"regex": "a", "lookup": {}}}, "entity 'e': expected exactly one"),
        ({"e": {"regex": "("}}, "not a valid regular expression"),
        ({"e": {"regex": "a*"}}, "matches the empty string"),
        ({"e": {"lookup": {}}}, '"lookup" must be a non-empty object'),
        ({"e": {"lookup": {"mug": "cup"}}}, "needs a non-empty name and a list"),
        ({"e": {"lookup": {"mug": ["Cup"], "cup": []}}}, "'cup' stands for both 'mug' and 'cup'"),
    ],
)
def test_invalid_entities_are_named(entities, message: str) -> None:
    with pytest.raises(IntentsError, match=message):
        validate_entities(entities, source="bot.json")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (r"[\W]", "$^ x", ["$", "^"]),  # a match that is itself punctuation, then the next
        (r"\d+", "1 2  3", ["1", "2", "3"]),
        (r"a", "a", ["a"]),
        (r"\d{5}", "x12345 12345y 12345", ["12345"]),
    ],
)
def test_adjacent_matches_are_all_found(pattern: str, text: str, expected: list[str]) -> None:
    extractor = EntityExtractor(validate_entities({"e": {"regex": pattern}}))
    assert [entity.value for entity in extractor.extract(text)] == expected


def test_a_lone_surrogate_is_no_error() -> None:
    extractor = EntityExtractor(validate_entities({"e": {"regex": r"\d{5}"}}))
    assert [(e.value, e.start) for e in extractor.extract("\ud800 12345 \ud800")] == [("12345", 2)]


def test_the_reported_patterns_cost_microseconds_per_message() -> None:
    """Issue 21, item 3: one 1,000-character message took 1-11 s of a worker with each of these."""
    patterns = SLOW_ON_BACKTRACKING[:3]
    message = ("order no. " + "b " * 500)[:1000]
    worst_seconds, batch_seconds = 0.0, 0.0
    for pattern in patterns:
        extractor = EntityExtractor(validate_entities({"e": {"regex": pattern}}))
        worst_seconds = max(worst_seconds, fastest_seconds(extractor, message, runs=5))
        started = time.perf_counter()
        for _ in range(10):  # a batch of ten, what killed a worker before
            extractor.extract(message)
        batch_seconds = max(batch_seconds, time.perf_counter() - started)
    record_figures(
        "entity_regexes",
        {
            "patterns": len(patterns),
            "message_chars": len(message),
            "worst_ms": round(worst_seconds * 1000, 3),
            "batch_ms": round(batch_seconds * 1000, 2),
        },
    )
    assert batch_seconds < 1.0  # before: 10-110 s for the batch
