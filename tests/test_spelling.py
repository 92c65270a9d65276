"""Typo correction towards the training words."""

from __future__ import annotations

import pytest

from chatbot.text.spelling import SpellingCorrector

CORRECTOR = SpellingCorrector(["order", "shipping", "refund", "return", "shopping", "hello", "how", "name"])


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("shiping", "shipping"),  # a letter left out
        ("shippping", "shipping"),  # a letter too many
        ("shipoing", "shipping"),  # a letter changed
        ("shpiping", "shipping"),  # two letters swapped
        ("refnud", "refund"),
        ("retrun", "return"),
        ("hello", "hello"),  # known words stay
        ("hwo", "hwo"),  # too short to guess
        ("ordr", "order"),
        ("amex", "amex"),  # one letter from "name", but a short word must keep its first letter
        ("nmae", "name"),
        ("zebra", "zebra"),  # nothing one letter away
        ("12345", "12345"),  # numbers are not words to correct
        ("shopping", "shopping"),
        ("shipping" * 6 + "x", "shipping" * 6 + "x"),  # too long to be a slip
    ],
)
def test_correct(word: str, expected: str) -> None:
    assert CORRECTOR.correct(word) == expected


def test_the_most_frequent_word_wins_a_tie() -> None:
    assert SpellingCorrector(["cart", "card"]).correct("carx") == "cart"
    assert SpellingCorrector(["card", "cart"]).correct("carx") == "card"
