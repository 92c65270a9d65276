"""Dialogue decisions: the fallback rule and context, on hand-written rankings."""

from __future__ import annotations

import math
import random

import pytest

from chatbot.classifier.ranker import Ranking
from chatbot.data.intents import DEFAULT_FALLBACK_RESPONSE, Intent
from chatbot.dialogue.decision import (
    ANSWERED,
    BELOW_THRESHOLD,
    FALLBACK_INTENT,
    NO_ELIGIBLE_INTENT,
    NO_KNOWN_WORD,
    Dialogue,
    FallbackRule,
    decide,
    fallback_score,
    has_no_known_word,
    is_below_threshold,
    is_eligible,
    next_context,
)


def ranking(*pairs: tuple[str, float], known_words: int = 2, words: int | None = None) -> Ranking:
    return Ranking(
        label_probabilities=tuple(pairs),
        known_words=known_words,
        words=known_words if words is None else words,
    )


@pytest.mark.parametrize(
    ("confidence", "threshold", "expected"),
    [(0.49, 0.5, True), (0.5, 0.5, False), (0.99, 0.5, False), (0.0, 0.0, False)],
)
def test_is_below_threshold(confidence: float, threshold: float, expected: bool) -> None:
    assert is_below_threshold(confidence, threshold) is expected


@pytest.mark.parametrize(
    ("known", "words", "penalty", "expected"),
    [(4, 4, 0.5, 0.9), (2, 4, 0.5, 0.65), (0, 4, 0.5, 0.4), (0, 0, 0.5, 0.4), (2, 4, 0.0, 0.9)],
)
def test_fallback_score_takes_off_the_unknown_share(
    known: int, words: int, penalty: float, expected: float
) -> None:
    score = fallback_score(0.9, ranking(("a", 0.9), known_words=known, words=words), penalty)
    assert score == pytest.approx(expected)


def test_unknown_words_can_tip_a_reply_into_fallback(dialogue: Dialogue) -> None:
    dialogue.rule = FallbackRule(0.5, unknown_word_penalty=0.5)
    assert not answer(dialogue, ("greeting", 0.7), known_words=4).fallback
    assert answer(dialogue, ("greeting", 0.7), known_words=2, words=4).fallback  # 0.7 - 0.25 < 0.5


@pytest.mark.parametrize(("known", "expected"), [(0, True), (1, False), (5, False)])
def test_has_no_known_word(known: int, expected: bool) -> None:
    assert has_no_known_word(ranking(("a", 1.0), known_words=known)) is expected


@pytest.mark.parametrize(
    ("context_filter", "context", "expected"),
    [(None, None, True), (None, "x", True), ("x", "x", True), ("x", None, False), ("x", "y", False)],
)
def test_is_eligible(context_filter, context, expected: bool) -> None:
    assert is_eligible(Intent("t", ("p",), ("r",), context_filter=context_filter), context) is expected


@pytest.mark.parametrize(
    ("context_set", "context", "expected"),
    [(None, "kept", "kept"), ("new", None, "new"), ("new", "old", "new"), ("", "old", None)],
)
def test_next_context(context_set, context, expected) -> None:
    assert next_context(Intent("t", ("p",), ("r",), context_set=context_set), context) == expected


def answer(dialogue: Dialogue, *pairs: tuple[str, float], context=None, known_words: int = 2, words=None):
    return dialogue.reply_to_ranking(ranking(*pairs, known_words=known_words, words=words), context)


INTENTS = {
    tag: Intent(tag, ("p",), ("r",), context_filter=context_filter)
    for tag, context_filter in [("a", None), ("b", None), ("fallback", None), ("in_context", "c")]
}


@pytest.mark.parametrize(
    ("pairs", "context", "known_words", "reason", "intent"),
    [
        ((("a", 0.9), ("b", 0.1)), None, 2, ANSWERED, "a"),
        ((("a", 0.4), ("b", 0.3)), None, 2, BELOW_THRESHOLD, "a"),
        ((("a", 0.9),), None, 0, NO_KNOWN_WORD, "a"),
        ((("fallback", 0.9), ("a", 0.1)), None, 2, FALLBACK_INTENT, "fallback"),
        ((("in_context", 0.9), ("a", 0.1)), None, 2, BELOW_THRESHOLD, "a"),  # skipped out of context
        ((("in_context", 0.9), ("a", 0.1)), "c", 2, ANSWERED, "in_context"),
        ((("in_context", 1.0),), None, 2, NO_ELIGIBLE_INTENT, "in_context"),
    ],
)
def test_decide_says_why(pairs, context, known_words: int, reason: str, intent: str) -> None:
    decision = decide(ranking(*pairs, known_words=known_words), context, INTENTS, FallbackRule(0.5))
    assert (decision.reason, decision.intent, decision.fallback) == (reason, intent, reason != ANSWERED)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.55, 0.9, 1.0])
def test_threshold_score_says_up_to_which_threshold_a_message_is_answered(threshold: float) -> None:
    cases = [((("a", 0.55),), 2), ((("a", 0.3),), 2), ((("a", 0.9),), 0), ((("fallback", 0.9),), 2)]
    for pairs, known_words in cases:
        message = ranking(*pairs, known_words=known_words)
        at_threshold = decide(message, None, INTENTS, FallbackRule(threshold))
        any_threshold = decide(message, None, INTENTS, FallbackRule(-math.inf))
        assert (any_threshold.threshold_score >= threshold) is not at_threshold.fallback


def test_confident_answer(dialogue: Dialogue) -> None:
    reply = answer(dialogue, ("greeting", 0.9), ("goodbye", 0.1))
    assert (reply.intent, reply.fallback, reply.response in {"Hello!", "Hi there."}) == (
        "greeting",
        False,
        True,
    )


def test_low_confidence_falls_back_to_the_fallback_intent(dialogue: Dialogue) -> None:
    reply = answer(dialogue, ("greeting", 0.4), ("goodbye", 0.35), ("order", 0.25))
    assert reply.fallback and reply.response == "Sorry, say again?"
    assert (reply.intent, reply.confidence) == ("greeting", 0.4)


def test_no_known_word_falls_back_even_when_confident(dialogue: Dialogue) -> None:
    assert answer(dialogue, ("greeting", 0.99), known_words=0).fallback


def test_context_filter_skips_ineligible_intents(dialogue: Dialogue) -> None:
    reply = answer(dialogue, ("order_number", 0.8), ("greeting", 0.15))
    assert reply.intent == "greeting" and reply.fallback  # 0.15 is below the threshold
    reply = answer(dialogue, ("order_number", 0.8), ("greeting", 0.15), context="order_number")
    assert (reply.intent, reply.fallback, reply.context) == ("order_number", False, None)


def test_context_set_moves_the_conversation(dialogue: Dialogue) -> None:
    reply = answer(dialogue, ("order", 0.9))
    assert reply.context == "order_number"


def test_fallback_keeps_the_context(dialogue: Dialogue) -> None:
    reply = answer(dialogue, ("greeting", 0.1), context="order_number")
    assert reply.fallback and reply.context == "order_number"


def test_default_sentence_without_a_fallback_intent(engine) -> None:
    dialogue = Dialogue(engine, threshold=0.5, rng=random.Random(0))
    dialogue.intents_by_tag.pop("fallback")
    assert answer(dialogue, ("greeting", 0.1)).response == DEFAULT_FALLBACK_RESPONSE


@pytest.mark.slow
def test_trained_bot_answers_and_follows_context(dialogue: Dialogue) -> None:
    first = dialogue.reply("where is my order")
    assert (first.intent, first.context) == ("order", "order_number")
    second = dialogue.reply("the number is 42", first.context)
    assert (second.intent, second.fallback, second.context) == ("order_number", False, None)
    assert dialogue.reply("asdf qwerty zxcv").fallback


def test_reply_offers_the_answering_intents_quick_replies(dialogue: Dialogue) -> None:
    import dataclasses

    dialogue.intents_by_tag["greeting"] = dataclasses.replace(
        dialogue.intents_by_tag["greeting"], quick_replies=("Shipping",)
    )
    dialogue.intents_by_tag["fallback"] = dataclasses.replace(
        dialogue.intents_by_tag["fallback"], quick_replies=("Help",)
    )
    assert answer(dialogue, ("greeting", 0.9)).quick_replies == ("Shipping",)
    assert answer(dialogue, ("greeting", 0.1)).quick_replies == ("Help",)
    assert answer(dialogue, ("goodbye", 0.9)).quick_replies == ()
