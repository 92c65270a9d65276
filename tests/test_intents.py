"""Validation of intents files: every user error is one clear line and exit status 2."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from chatbot.data.intents import (
    fingerprint_data,
    load_intents,
    load_language,
    load_widget_strings,
    validate_intents,
)
from chatbot.data.slots import Domain, validate_domain
from chatbot.errors import IntentsError
from tests.support import SLOT_DATA, TINY_INTENTS, run_cli, write_json


def with_change(change) -> dict:
    """Return a copy of the tiny intents with one change applied."""
    data = copy.deepcopy(TINY_INTENTS)
    change(data["intents"])
    return data


INVALID = [
    pytest.param(lambda i: i[1].pop("tag"), 'intent 1: "tag" is missing or empty', id="missing-tag"),
    pytest.param(lambda i: i[1].update(tag="  "), 'intent 1: "tag" is missing or empty', id="empty-tag"),
    pytest.param(
        lambda i: i[2].update(tag="greeting"),
        "intent 2 ('greeting'): duplicate tag, already used by intent 0",
        id="duplicate-tag",
    ),
    pytest.param(
        lambda i: i[0].update(patterns="hi"),
        "intent 0 ('greeting'): \"patterns\" must be a list of non-empty strings",
        id="patterns-not-list",
    ),
    pytest.param(
        lambda i: i[0]["patterns"].append(""),
        "intent 0 ('greeting'): \"patterns\"[6] must be a non-empty string",
        id="empty-pattern",
    ),
    pytest.param(
        lambda i: i[0]["patterns"].append(3),
        "intent 0 ('greeting'): \"patterns\"[6] must be a non-empty string",
        id="pattern-not-string",
    ),
    pytest.param(
        lambda i: i[1].update(patterns=[]),
        "intent 1 ('goodbye'): \"patterns\" is empty",
        id="no-patterns",
    ),
    pytest.param(
        lambda i: i[1].pop("responses"),
        "intent 1 ('goodbye'): \"responses\" is missing",
        id="missing-responses",
    ),
    pytest.param(
        lambda i: i[1].update(responses=[]),
        "intent 1 ('goodbye'): \"responses\" is empty",
        id="empty-responses",
    ),
    pytest.param(
        lambda i: i[3].update(context_filter="nowhere"),
        "intent 3 ('order_number'): \"context_filter\" 'nowhere' is never set",
        id="context-filter-unset",
    ),
    pytest.param(
        lambda i: i[2].update(context_set=5),
        "intent 2 ('order'): \"context_set\" must be a string",
        id="context-set-not-string",
    ),
    pytest.param(lambda i: i.__setitem__(0, "hi"), "intent 0: expected an object", id="intent-not-object"),
    pytest.param(
        lambda i: i[0].update(quick_replies="Shipping"),
        "intent 0 ('greeting'): \"quick_replies\" must be a list of non-empty strings",
        id="quick-replies-not-list",
    ),
    pytest.param(
        lambda i: i[4].update(quick_replies=["Shipping", " "]),
        "intent 4 ('fallback'): \"quick_replies\"[1] must be a non-empty string",
        id="empty-quick-reply",
    ),
    pytest.param(
        lambda i: i[2].update(quick_replies=[{"label": "Yes"}]),
        "intent 2 ('order'): \"quick_replies\"[0] must be a non-empty string",
        id="quick-reply-not-string",
    ),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
def test_validate_intents_names_the_fault(change, message: str) -> None:
    with pytest.raises(IntentsError, match=r"^intents: ") as raised:
        validate_intents(with_change(change))
    assert message in str(raised.value)


@pytest.mark.parametrize("raw", [[], {}, {"intents": []}, {"intents": {}}, "text"])
def test_validate_intents_needs_an_intents_list(raw) -> None:
    with pytest.raises(IntentsError, match='non-empty "intents" list'):
        validate_intents(raw)


def test_unknown_keys_are_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    data = with_change(lambda i: i[0].update(emoji="wave"))
    with caplog.at_level(logging.WARNING):
        intents = validate_intents(data)
    assert intents[0].tag == "greeting"
    assert "intent 0 ('greeting'): unknown key 'emoji' is ignored" in caplog.text


def test_quick_replies_are_optional_button_labels(tiny_intents) -> None:
    intents = validate_intents(with_change(lambda i: i[0].update(quick_replies=["Track an order", "Bye"])))
    assert intents[0].quick_replies == ("Track an order", "Bye")
    assert intents[0].to_dict()["quick_replies"] == ("Track an order", "Bye")
    assert [intent.quick_replies for intent in tiny_intents] == [()] * len(tiny_intents)


def test_no_quick_replies_keep_the_data_hash(tiny_intents) -> None:
    # An empty list is the same as none, and neither appears in the hashed form: models trained
    # before quick replies existed keep their data_sha256.
    empty = validate_intents(with_change(lambda i: i[0].update(quick_replies=[])))
    assert all("quick_replies" not in intent.to_dict() for intent in [*tiny_intents, *empty])
    assert fingerprint_data(empty) == fingerprint_data(tiny_intents)
    with_buttons = validate_intents(with_change(lambda i: i[0].update(quick_replies=["Bye"])))
    assert fingerprint_data(with_buttons) != fingerprint_data(tiny_intents)


def test_fallback_may_have_no_patterns(tiny_intents) -> None:
    assert [intent.tag for intent in tiny_intents if not intent.patterns] == ["fallback"]


def test_load_intents_reports_json_position(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"intents": [\n  {"tag": "a",}\n]}', encoding="utf-8")
    with pytest.raises(IntentsError, match=r"invalid JSON at line 2, column 15"):
        load_intents(path)


def test_load_intents_missing_file(tmp_path) -> None:
    with pytest.raises(IntentsError, match="file not found"):
        load_intents(tmp_path / "absent.json")


def test_fingerprint_changes_with_the_data(tiny_intents) -> None:
    changed = validate_intents(with_change(lambda i: i[0]["patterns"].append("howdy")))
    assert fingerprint_data(tiny_intents) == fingerprint_data(validate_intents(TINY_INTENTS))
    assert fingerprint_data(tiny_intents) != fingerprint_data(changed)


def test_fingerprint_covers_entities_slots_and_widget_texts(tiny_intents) -> None:
    """They change what the bot does, not its weights: /version's data_sha256 must tell them apart."""
    plain = fingerprint_data(tiny_intents)
    assert fingerprint_data(tiny_intents, Domain(), {}) == plain  # empty sections: the old hash
    domain = validate_domain(SLOT_DATA)
    with_domain = fingerprint_data(tiny_intents, domain)
    other_regex = copy.deepcopy(SLOT_DATA)
    other_regex["entities"]["order_number"]["regex"] = r"\d{7}"
    assert len({plain, with_domain, fingerprint_data(tiny_intents, validate_domain(other_regex))}) == 3
    assert fingerprint_data(tiny_intents, widget_strings={"title": "Help"}) != plain


CLI_CASES = [
    *[pytest.param(case.values[0], case.values[1], id=case.id) for case in INVALID],
    pytest.param(None, "invalid JSON at line 1, column 2", id="invalid-json"),
]


@pytest.mark.slow  # a CLI process a case; the same INVALID cases run in-process above
@pytest.mark.parametrize(("change", "message"), CLI_CASES)
def test_train_cli_rejects_bad_intents_with_one_line(tmp_path, change, message: str) -> None:
    path = tmp_path / "intents.json"
    if change is None:
        path.write_text("{oops", encoding="utf-8")
    else:
        write_json(path, with_change(change))
    result = run_cli("train", "--data", str(path), "--out", str(tmp_path / "model.h5"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not (tmp_path / "model.h5").exists()


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("klingon", "\"language\": unknown language 'klingon': use an ISO 639-1 code"),
        ("xx", "unknown language 'xx'"),
        ("", "unknown language ''"),
        (7, "unknown language 7"),
        ("de--AT", "unknown language 'de--AT'"),
    ],
)
def test_unknown_language_is_named(language, message: str) -> None:
    with pytest.raises(IntentsError, match=r"^intents: ") as raised:
        validate_intents({**TINY_INTENTS, "language": language})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("language", "code"), [(None, "en"), ("de", "de"), ("de-AT", "de"), ("TH", "th"), ("pt_BR", "pt")]
)
def test_language_is_the_primary_subtag(tmp_path, language, code: str) -> None:
    data = TINY_INTENTS if language is None else {**TINY_INTENTS, "language": language}
    path = write_json(tmp_path / "intents.json", data)
    assert load_language(path) == code
    assert len(load_intents(path)) == len(TINY_INTENTS["intents"])


@pytest.mark.parametrize(
    ("widget", "message"),
    [
        ("Hallo", '"widget" must be an object of texts'),
        ({"placeholder": 3}, "\"widget\": 'placeholder' must be a string"),
        ({"placehodler": "Nachricht"}, "\"widget\": unknown text 'placehodler'; known: bot_said"),
    ],
)
def test_widget_texts_are_checked(widget, message: str) -> None:
    with pytest.raises(IntentsError) as raised:
        validate_intents({**TINY_INTENTS, "widget": widget})
    assert message in str(raised.value)


def test_widget_texts_are_read(tmp_path) -> None:
    path = write_json(tmp_path / "intents.json", {**TINY_INTENTS, "widget": {"retry": "Nochmal"}})
    assert load_widget_strings(path) == {"retry": "Nochmal"}
    assert load_widget_strings(write_json(tmp_path / "plain.json", TINY_INTENTS)) == {}


def test_plain_text_reads_a_data_sets_brackets_as_text(tmp_path) -> None:
    """Public data sets are not written in annotation syntax: --plain-text keeps their brackets."""
    data = copy.deepcopy(TINY_INTENTS)
    data["intents"][0]["patterns"] += ["a travel alert for [country]", "a path like C:\\temp"]
    path = write_json(tmp_path / "intents.json", data)
    with pytest.raises(IntentsError, match=r"\[\.\.\.\]' at character .* must be followed by \(entity\)"):
        load_intents(path)
    intents = load_intents(path, plain_text=True)
    assert intents[0].patterns[-2:] == ("a travel alert for [country]", "a path like C:\\temp")
    assert [example.annotations for example in intents[0].examples()][-2:] == [(), ()]
    # Round trip through the file form a bundle stores: the escaped phrases read back as themselves.
    stored = json.loads(json.dumps({"intents": [intent.to_dict() for intent in intents]}))
    again = validate_intents(stored, "bundle")
    assert again[0].patterns == intents[0].patterns
