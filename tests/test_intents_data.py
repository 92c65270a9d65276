"""Data tests: the shipped data/intents.json is a complete, unambiguous default bot."""

from __future__ import annotations

import pytest

from chatbot.classifier.bundle import Bundle
from chatbot.data.intents import (
    FALLBACK_TAG,
    fingerprint_data,
    load_domain,
    load_intents,
    load_widget_strings,
)
from chatbot.text.tokens import tokenize
from tests.support import DEFAULT_INTENTS

ORIGINAL_PATTERNS = {
    "greeting": ["Hi", "How are you", "Is anyone there?", "Hello", "Good day", "Whats up"],
    "goodbye": ["cya", "See you later", "Goodbye", "I am Leaving", "Have a Good day"],
    "help": ["Help", "Can you help me?", "What can you do?", "What are your capabilities?"],
    "name": ["What is your name?", "what should I call you", "whats your name?", "who are you?"],
}


@pytest.fixture(scope="module")
def intents():
    return load_intents(DEFAULT_INTENTS)


def test_default_bot_is_big_enough(intents) -> None:
    assert len(intents) >= 12
    for intent in intents:
        assert len(intent.patterns) >= 8, intent.tag
        assert len(intent.responses) >= 2, intent.tag


@pytest.mark.parametrize(("tag", "patterns"), ORIGINAL_PATTERNS.items())
def test_original_intents_keep_their_patterns(intents, tag: str, patterns: list[str]) -> None:
    by_tag = {intent.tag: intent for intent in intents}
    assert set(patterns) <= set(by_tag[tag].patterns)


def test_has_a_context_pair_and_a_fallback(intents) -> None:
    sets = {intent.context_set for intent in intents if intent.context_set}
    filters = {intent.context_filter for intent in intents if intent.context_filter}
    assert sets & filters
    assert FALLBACK_TAG in {intent.tag for intent in intents}


def test_no_pattern_means_two_intents(intents) -> None:
    owner: dict[tuple[str, ...], str] = {}
    for intent in intents:
        for pattern in intent.patterns:
            tokens = tuple(tokenize(pattern))
            assert owner.setdefault(tokens, intent.tag) == intent.tag, f"{pattern!r} in {intent.tag}"


def test_responses_are_plain_text(intents) -> None:
    for intent in intents:
        for response in intent.responses:
            assert "<" not in response and ">" not in response, response


def test_quick_replies_are_phrases_the_bot_was_trained_on(intents) -> None:
    # A button sends its label: as a training pattern, it reaches the intended intent (the server
    # tests check that every pattern is classified as its own intent).
    owner = {
        pattern: intent.tag for intent in intents if intent.tag != FALLBACK_TAG for pattern in intent.patterns
    }
    offered = {label: owner.get(label) for intent in intents for label in intent.quick_replies}
    assert offered == {
        "Shipping": "shipping",
        "Returns": "returns",
        "Order status": "order_status",
        "Talk to a person": "human_handoff",
    }


@pytest.mark.slow
def test_the_trained_default_bot_carries_and_names_all_of_its_data(default_model_path) -> None:
    """Its entities and slots travel in the bundle, and data_sha256 covers them (and widget texts)."""
    bundle = Bundle.load(default_model_path)
    domain = load_domain(DEFAULT_INTENTS)
    assert domain.entities and bundle.domain == domain
    widget_strings = load_widget_strings(DEFAULT_INTENTS)
    assert bundle.data_sha256 == fingerprint_data(load_intents(DEFAULT_INTENTS), domain, widget_strings)
    assert bundle.data_sha256 != fingerprint_data(load_intents(DEFAULT_INTENTS))
