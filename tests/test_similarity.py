"""Near-duplicate texts by character trigrams: the review inbox's groups and validate's warnings."""

from __future__ import annotations

import hashlib

import pytest

from chatbot.text.similarity import NearDuplicateIndex, canonical, similar_pairs, similarity


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


def test_similar_pairs_finds_what_comparing_every_pair_finds() -> None:
    texts = [
        "where is my order",
        "where is my orders",
        "track my parcel",
        "track my parcels please",
        "hello",
        "hello!",
        "what are your opening hours",
        "what are your opening hours today",
        "refund",
    ]
    every_pair = {
        (i, j)
        for i in range(len(texts))
        for j in range(i + 1, len(texts))
        if similarity(texts[i], texts[j]) >= 0.6
    }
    assert {(i, j) for i, j, _ in similar_pairs(texts, 0.6)} == every_pair
    assert (0, 1) in every_pair and (4, 5) in every_pair


def test_the_index_groups_near_duplicates_under_the_first_one_seen() -> None:
    texts = [
        "do you sell gift cards",
        "Do you sell gift cards?",
        "do you sell giftcards",
        "weather today",
        "x",
    ]
    index = NearDuplicateIndex(0.7)
    named = []
    for number, text in enumerate(texts):
        group = index.find(text)
        if group is None:
            index.add(number, text)
            group = number
        named.append(group)
    assert named == [0, 0, 0, 3, 4]


def test_the_index_forgets_its_oldest_groups_past_capacity() -> None:
    texts = [hashlib.sha256(str(number).encode()).hexdigest()[:24] for number in range(25)]  # all unalike
    index = NearDuplicateIndex(0.7, capacity=10)
    for number, text in enumerate(texts):
        index.add(number, text)
    assert len(index) <= 10 and index.find(texts[24]) == 24
    assert index.find(texts[0]) is None  # forgotten: it would found a new group
