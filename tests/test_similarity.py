"""Near-duplicate texts by character trigrams: the review inbox's groups and validate's warnings."""

from __future__ import annotations

import pytest

from chatbot.similarity import canonical, group_similar, similarity


@pytest.mark.parametrize(
    ("first", "second", "alike"),
    [
        ("where is my order", "Where is my order?!", True),
        ("where is my order", "where is my orderr", True),
        ("where is my order", "where are my orders", False),
        ("hello", "goodbye", False),
    ],
)
def test_similarity_reaches_the_threshold_only_for_near_duplicates(
    first: str, second: str, alike: bool
) -> None:
    assert (similarity(first, second) >= 0.8) is alike


def test_canonical_folds_case_punctuation_and_spacing() -> None:
    assert canonical("  What's   UP?! ") == "what s up"


def test_groups_keep_input_order_and_the_first_text_stands_for_each() -> None:
    texts = ["where is my order", "hello there", "Where is my order?", "where is my orderr", "hello"]
    groups = group_similar(texts)
    assert [(group.representative, group.members) for group in groups] == [
        ("where is my order", [0, 2, 3]),
        ("hello there", [1]),
        ("hello", [4]),
    ]
