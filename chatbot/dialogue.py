"""Choose the bot's answer from a ranking: fallback decisions and conversation context."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.bundle import Bundle
from chatbot.data import FALLBACK_TAG, Intent
from chatbot.engine import Engine, Ranking

log = logging.getLogger(__name__)

DEFAULT_FALLBACK_RESPONSE = "Sorry, I didn't understand that. Could you say it another way?"


@dataclass(frozen=True)
class Reply:
    """What the bot answers to one message, and the context the conversation moves to."""

    response: str
    intent: str  # the intent answered, or the best guess when falling back
    confidence: float
    fallback: bool
    context: str | None
    ranking: Ranking
    quick_replies: tuple[str, ...] = ()  # buttons offered with the response: its intent's


def is_below_threshold(confidence: float, threshold: float) -> bool:
    """Say whether the classifier is too unsure to answer."""
    return confidence < threshold


def fallback_score(confidence: float, ranking: Ranking, unknown_word_penalty: float) -> float:
    """Return the confidence less a penalty for the share of unknown words.

    A query made of words the bot never saw is likely out of scope even when the softmax is sure.
    """
    unknown_share = 1.0 - ranking.known_words / ranking.words if ranking.words else 1.0
    return confidence - unknown_word_penalty * unknown_share


def has_no_known_word(ranking: Ranking) -> bool:
    """Say whether the message shares no word with the training data: any answer would be a guess."""
    return ranking.known_words == 0


def is_eligible(intent: Intent, context: str | None) -> bool:
    """Say whether an intent may answer in the given context (context_filter must match it)."""
    return intent.context_filter is None or intent.context_filter == context


def next_context(intent: Intent, context: str | None) -> str | None:
    """Return the context after answering with the intent; an empty context_set clears it."""
    if intent.context_set is None:
        return context
    return intent.context_set or None


class Dialogue:
    """Answer messages with an engine's rankings, a threshold and the intents' responses."""

    def __init__(self, engine: Engine, threshold: float, rng: random.Random | None = None) -> None:
        self.engine = engine
        self.threshold = threshold
        self.unknown_word_penalty = engine.bundle.config.unknown_word_penalty
        self.intents = {intent.tag: intent for intent in engine.bundle.intents}
        self.rng = rng or random.Random()
        self.extractor = engine.bundle.domain.extractor()  # compiled once per model, swapped with it

    def reply(self, message: str, context: str | None = None) -> Reply:
        """Answer one message in a conversation that is in ``context``."""
        return self.decide(self.engine.rank(message), context)

    def reply_batch(self, messages: Sequence[str], context: str | None = None) -> list[Reply]:
        """Answer several independent messages with one forward pass."""
        return [self.decide(ranking, context) for ranking in self.engine.rank_batch(messages)]

    def decide(self, ranking: Ranking, context: str | None) -> Reply:
        """Pick the best eligible intent, or fall back; never raises for any ranking."""
        eligible = [(tag, score) for tag, score in ranking.intents if is_eligible(self.intents[tag], context)]
        tag, confidence = eligible[0] if eligible else ranking.top
        fallback = (
            not eligible
            or tag == FALLBACK_TAG
            or has_no_known_word(ranking)
            or is_below_threshold(
                fallback_score(confidence, ranking, self.unknown_word_penalty), self.threshold
            )
        )
        log.debug(
            "best eligible %s %.3f, threshold %.3f, known words %d, fallback %s",
            tag,
            confidence,
            self.threshold,
            ranking.known_words,
            fallback,
        )
        if fallback:
            answer = self.intents.get(FALLBACK_TAG)
            response = self.rng.choice(answer.responses) if answer else DEFAULT_FALLBACK_RESPONSE
            return Reply(
                response, tag, confidence, True, context, ranking, answer.quick_replies if answer else ()
            )
        intent = self.intents[tag]
        response = self.rng.choice(intent.responses)
        return Reply(
            response, tag, confidence, False, next_context(intent, context), ranking, intent.quick_replies
        )


def load_dialogue(model_path: str | Path, threshold: float | None = None, engine: str = "numpy") -> Dialogue:
    """Load a bundle and answer with it; the threshold defaults to the one stored in the bundle."""
    bundle = Bundle.load(model_path)
    log.info("loaded model %s (%d intents) from %s", bundle.fingerprint, len(bundle.labels), model_path)
    threshold = bundle.config.threshold if threshold is None else threshold
    return Dialogue(Engine.from_bundle(bundle, engine), threshold)
