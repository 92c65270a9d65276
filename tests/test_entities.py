"""Entity extraction: regex and lookup entities, offsets into the original text, unsafe patterns refused."""

from __future__ import annotations

import pytest

from chatbot.data.entities import EntityExtractor, unsafe_regex_reason, validate_entities
from chatbot.errors import IntentsError

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


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"x(\w+\s?)*$", r"(x+x+)+y", r"(a|b|ab)*c", r"x(a|aa)*$", r"a*a*a*a*a*b"],
)
def test_catastrophic_patterns_are_refused(pattern: str) -> None:
    assert unsafe_regex_reason(pattern) is not None
    with pytest.raises(IntentsError, match="backtrack catastrophically"):
        validate_entities({"bad": {"regex": pattern}})


@pytest.mark.parametrize(
    "pattern", [r"[a-z]{1,3}-?\d{4,6}|\d{5,6}", r"(\d{1,3}\.){3}\d{1,3}", r"\w+@\w+\.com"]
)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    assert unsafe_regex_reason(pattern) is None


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
