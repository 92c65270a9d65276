"""Bidi controls and zero-width characters are refused in intents.json, out_of_scope.txt and review edits."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from chatbot.data.edit import add_out_of_scope
from chatbot.data.intents import validate_intents
from chatbot.errors import EditError, IntentsError
from chatbot.text.hidden import find_hidden_character
from chatbot.training.threshold import load_out_of_scope
from tests.support import TINY_INTENTS

HIDDEN = {
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "zero-width space": "\u200b",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "zero-width joiner between ASCII letters": "\u200d",
    "escape": "\x1b",
    "NUL": "\x00",
}


@pytest.mark.parametrize("character", HIDDEN.values(), ids=HIDDEN.keys())
def test_hidden_characters_are_found(character: str) -> None:
    assert find_hidden_character(f"re{character}fund") == (2, find_hidden_character(character)[1])


@pytest.mark.parametrize(
    "text",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian needs the non-joiner between letters
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # an emoji family: joiners between emoji
        "क्\u200dष",  # Devanagari with a joiner
        "line one\nline two\twith a tab",
        "crème brûlée, 東京, \u0645\u0631\u062d\u0628\u0627",
    ],
)
def test_ordinary_text_passes(text: str) -> None:
    assert find_hidden_character(text) is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            lambda data: data["intents"][0]["patterns"].append("re\u202efund"),
            r"intents\[0\]\.patterns\[\d+\]",
        ),
        (lambda data: data["intents"][1]["responses"].append("ok\u200b"), r"intents\[1\]\.responses\[\d+\]"),
        (lambda data: data["intents"][0].update(tag="gree\u2066ting"), r"intents\[0\]\.tag"),
        (lambda data: data.update(widget={"title": "Shop\u00ad"}), r"widget\.title"),
    ],
)
def test_intents_with_hidden_characters_are_refused_naming_the_field(change, where: str) -> None:
    data = copy.deepcopy(TINY_INTENTS)
    change(data)
    with pytest.raises(
        IntentsError, match=rf"bot\.json: {where}: U\+[0-9A-F]{{4}} .* changes how the text reads"
    ):
        validate_intents(data, source="bot.json")


def test_review_cannot_add_them_to_out_of_scope(tmp_path: Path) -> None:
    path = tmp_path / "out_of_scope.txt"
    with pytest.raises(EditError, match="U\\+202E"):
        add_out_of_scope(path, "what's the \u202eweather")
    assert not path.exists()


def test_training_refuses_an_out_of_scope_file_holding_them(tmp_path: Path) -> None:
    path = tmp_path / "out_of_scope.txt"
    path.write_text("play some music\nwhat's the\u200b weather\n", encoding="utf-8")
    with pytest.raises(IntentsError, match="line 2: U\\+200B"):
        load_out_of_scope(path)
