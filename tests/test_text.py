"""The text pipeline: same tokens for training and serving, any unicode input, no downloads."""

from __future__ import annotations

import pytest

from chatbot.text import normalize, stem, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello", ["hello"]),
        ("What's up?", ["what", "'s", "up"]),
        ("Is anyone there?", ["is", "anyon", "ther"]),
        ("I am Leaving", ["i", "am", "leav"]),
        ("HELLO, how are YOU!!", ["hello", "how", "ar", "you"]),
        ("?!...", []),
        ("", []),
        ("   ", []),
        ("café naïve", ["café", "naïv"]),
        ("\uff28\uff25\uff2c\uff2c\uff2f", ["hello"]),  # full-width letters fold to ASCII
        ("日本語 😀", ["日本語", "😀"]),
        ("a\x00b\ud800", ["a\x00b\ud800"]),  # control and lone surrogate characters do not crash
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_tokenize_is_stable_and_case_insensitive() -> None:
    assert tokenize("Where is my ORDER?") == tokenize("where is my order") == tokenize("Where is my ORDER?")


def test_normalize_folds_case_and_compatibility_forms() -> None:
    assert normalize("Straße ﬁle") == "strasse file"


def test_stem_is_cached() -> None:
    stem.cache_clear()
    stem("leaving")
    stem("leaving")
    assert stem.cache_info().hits == 1
