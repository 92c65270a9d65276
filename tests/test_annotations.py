"""Entity annotations in patterns: Rasa's syntax, what the classifier sees, and every malformed case."""

from __future__ import annotations

import copy
import json

import pytest

from chatbot.data.annotations import (
    AnnotatedText,
    Annotation,
    AnnotationError,
    escape_markup,
    parse_annotated,
)
from chatbot.data.intents import fingerprint_data, validate_intents
from chatbot.data.slots import Domain
from chatbot.errors import IntentsError
from tests.support import TINY_INTENTS, run_cli, write_json


def write_annotated(annotated: AnnotatedText) -> str:
    """Write a parsed phrase back in annotation syntax, to check that parsing loses nothing."""
    pieces: list[str] = []
    cursor = 0
    for annotation in annotated.annotations:
        pieces.append(escape_markup(annotated.text[cursor : annotation.start]))
        label = annotation.entity if annotation.value is None else f"{annotation.entity}:{annotation.value}"
        pieces.append(f"[{escape_markup(annotated.text[annotation.start : annotation.end])}]({label})")
        cursor = annotation.end
    pieces.append(escape_markup(annotated.text[cursor:]))
    return "".join(pieces)


PARSED = [
    pytest.param("hello there", "hello there", (), id="plain"),
    pytest.param(
        "book a table for [four](party_size) on [Friday](date)",
        "book a table for four on Friday",
        (Annotation("party_size", 17, 21), Annotation("date", 25, 31)),
        id="two",
    ),
    pytest.param(
        "fly to [NYC](city:New York)", "fly to NYC", (Annotation("city", 7, 10, "New York"),), id="synonym"
    ),
    pytest.param(
        'fly to [NYC]{"entity": "city", "value": "New York"} now',
        "fly to NYC now",
        (Annotation("city", 7, 10, "New York"),),
        id="object-form",
    ),
    pytest.param(
        'to [Paris]{"entity": "city"}', "to Paris", (Annotation("city", 3, 8),), id="object-no-value"
    ),
    pytest.param(
        r"press \[x\] to [exit](key)", "press [x] to exit", (Annotation("key", 13, 17),), id="escaped"
    ),
    pytest.param(r"a back\\slash", "a back\\slash", (), id="escaped-backslash"),
    pytest.param(r"C:\path", r"C:\path", (), id="lone-backslash"),
    pytest.param(
        "[San Francisco](city) is nice", "San Francisco is nice", (Annotation("city", 0, 13),), id="start"
    ),
]


@pytest.mark.parametrize(("pattern", "text", "annotations"), PARSED)
def test_parse_annotated(pattern: str, text: str, annotations: tuple[Annotation, ...]) -> None:
    parsed = parse_annotated(pattern)
    assert parsed == AnnotatedText(text, annotations)
    for annotation in annotations:
        assert text[annotation.start : annotation.end].strip() == text[annotation.start : annotation.end]
    assert parse_annotated(write_annotated(parsed)) == parsed  # the written form reads back the same


MALFORMED = [
    pytest.param("book [four(party_size)", "never closed", id="unclosed"),
    pytest.param("book four](party_size)", "has no '['", id="stray-close"),
    pytest.param("book [four]", "must be followed by (entity)", id="no-label"),
    pytest.param("book [four] now", "must be followed by (entity)", id="bare-brackets"),
    pytest.param("book [](party_size)", "empty annotation", id="empty"),
    pytest.param("book [ ](party_size)", "empty annotation", id="blank"),
    pytest.param("book [ four](party_size)", "starts or ends with a space", id="padded"),
    pytest.param("go [to [Paris](city)](trip)", "may not overlap", id="nested"),
    pytest.param("book [four](party size)", "letters, digits and _", id="bad-name"),
    pytest.param("book [four](1x)", "letters, digits and _", id="digit-name"),
    pytest.param("book [four](party_size", "never closed", id="unclosed-label"),
    pytest.param("to [NYC](city:)", "empty synonym", id="empty-synonym"),
    pytest.param('to [NYC]{"entity": 3}', '{"entity": name}', id="object-bad"),
    pytest.param('to [NYC]{"entity": "city", "x": 1}', '{"entity": name}', id="object-extra-key"),
    pytest.param('to [NYC]{"entity": "city"', "not valid JSON", id="object-broken"),
    pytest.param("[x](a)", None, id="fine-control"),
]


@pytest.mark.parametrize(("pattern", "message"), MALFORMED)
def test_malformed_annotations_say_what_is_wrong(pattern: str, message: str | None) -> None:
    if message is None:
        parse_annotated(pattern)
        return
    with pytest.raises(
        AnnotationError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        parse_annotated(pattern)


def annotated_data(*patterns: str) -> dict:
    data = copy.deepcopy(TINY_INTENTS)
    data["intents"][2]["patterns"] += list(patterns)
    return data


def test_the_classifier_sees_plain_text_and_the_annotations_are_kept() -> None:
    intents = validate_intents(annotated_data("ship it to [Berlin](city) [tomorrow](when)"))
    order = intents[2]
    assert order.patterns[-1] == "ship it to Berlin tomorrow"
    assert order.examples()[-1].annotations == (Annotation("city", 11, 17), Annotation("when", 18, 26))
    assert order.to_dict()["patterns"][-1] == "ship it to [Berlin](city) [tomorrow](when)"
    data = annotated_data("ship it to [Berlin](city) [tomorrow](when)")
    assert (
        validate_intents(
            json.loads(json.dumps({**data, "intents": [intent.to_dict() for intent in intents]}))
        )[2]
        == order
    )
    assert intents[0].annotated == ()  # plain intents carry nothing extra
    assert "annotated" not in intents[0].to_dict()


def test_plain_data_keeps_its_hash() -> None:
    # Annotations are an addition: data without them hashes as before the feature existed.
    intents = validate_intents(copy.deepcopy(TINY_INTENTS))
    assert fingerprint_data(intents, Domain()) == fingerprint_data(
        validate_intents(json.loads(json.dumps({"intents": [intent.to_dict() for intent in intents]})))
    )


def test_a_malformed_annotation_names_the_intent_and_the_phrase() -> None:
    with pytest.raises(IntentsError) as raised:
        validate_intents(annotated_data("ship to [Berlin(city)"))
    assert "intent 2 ('order')" in str(raised.value)
    assert "pattern 'ship to [Berlin(city)'" in str(raised.value)
    assert "never closed" in str(raised.value)


def test_entity_names_differing_only_in_case_are_refused() -> None:
    with pytest.raises(IntentsError, match=r"'city' .* and 'City' .* differ only in case"):
        validate_intents(annotated_data("to [Berlin](city)", "to [Paris](City)"))


def test_an_annotated_entity_needs_no_declaration_to_fill_a_slot() -> None:
    data = annotated_data("ship it to [Berlin](city)")
    data["slots"] = {"destination": {"entity": "city"}}
    data["intents"][2]["require"] = [{"slot": "destination", "ask": "Where to?"}]
    intents = validate_intents(data)
    assert intents[2].require[0].slot == "destination"
    data["slots"] = {"destination": {"entity": "town"}}
    with pytest.raises(IntentsError, match="entity 'town' is not defined"):
        validate_intents(data)


def test_validate_names_the_intent_and_phrase_of_a_bad_annotation(tmp_path) -> None:
    path = write_json(tmp_path / "intents.json", annotated_data("ship to [Berlin(city)"))
    result = run_cli("validate", "--data", str(path))
    assert result.returncode == 1  # validate's status for a file with errors
    assert "intent 2 ('order'): pattern 'ship to [Berlin(city)': unbalanced brackets" in result.stdout
