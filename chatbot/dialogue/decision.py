"""Choose the bot's answer from a ranking: fallback decisions and conversation context."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.extraction import EntityPipeline
from chatbot.classifier.ranker import Ranker, Ranking
from chatbot.data.intents import FALLBACK_TAG, Intent
from chatbot.text.languages import fallback_response

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What the bot answers to one message, and the context the conversation moves to."""

    response: str
    intent: str  # the intent answered, or the best guess when falling back
    confidence: float
    fallback: bool
    context: str | None
    ranking: Ranking
    quick_replies: tuple[str, ...] = ()  # buttons offered with the response: its intent's


@dataclass(frozen=True)
class FallbackRule:
    """The settings of the fallback decision, as the bundle (or the server's config) gives them."""

    threshold: float  # below this score the bot falls back
    unknown_word_penalty: float = 0.0  # score taken off per share of unknown words


ANSWERED = "answered"
BELOW_THRESHOLD = "below_threshold"
NO_KNOWN_WORD = "no_known_word"
FALLBACK_INTENT = "fallback_intent"
NO_ELIGIBLE_INTENT = "no_eligible_intent"


@dataclass(frozen=True)
class Decision:
    """Which intent answers a ranked message, or why the bot falls back."""

    intent: str  # the best eligible intent, or the best guess when none is eligible
    confidence: float  # that intent's probability
    score: float  # the confidence less the unknown-word penalty: what the threshold is compared with
    reason: str  # ANSWERED, or why not: BELOW_THRESHOLD, NO_KNOWN_WORD, FALLBACK_INTENT, NO_ELIGIBLE_INTENT

    @property
    def fallback(self) -> bool:
        """Say whether the bot falls back instead of answering with the intent."""
        return self.reason != ANSWERED

    @property
    def threshold_score(self) -> float:
        """Return the highest threshold at which the message is answered (-inf: at none).

        Evaluation and calibration sweep thresholds over this, so they apply the very rule the
        server runs (decide), not a copy of it.
        """
        return self.score if self.reason in (ANSWERED, BELOW_THRESHOLD) else -math.inf


def decide(
    ranking: Ranking, context: str | None, intents_by_tag: Mapping[str, Intent], rule: FallbackRule
) -> Decision:
    """Apply the fallback rule: the one place that says whether a message is answered, and with what.

    Serving, ``evaluate`` and ``calibrate`` all call this. Never raises for any ranking.
    """
    # The ranking is best first: the first eligible intent is the answer (150 intents: stop early).
    eligible = next(
        (
            (tag, score)
            for tag, score in ranking.label_probabilities
            if is_eligible(intents_by_tag[tag], context)
        ),
        None,
    )
    tag, confidence = eligible or ranking.top
    score = fallback_score(confidence, ranking, rule.unknown_word_penalty)
    if not eligible:
        reason = NO_ELIGIBLE_INTENT
    elif tag == FALLBACK_TAG:
        reason = FALLBACK_INTENT
    elif has_no_known_word(ranking):
        reason = NO_KNOWN_WORD
    elif is_below_threshold(score, rule.threshold):
        reason = BELOW_THRESHOLD
    else:
        reason = ANSWERED
    log.debug(
        "best eligible %s %.3f, score %.3f, threshold %.3f, known words %d/%d: %s",
        tag,
        confidence,
        score,
        rule.threshold,
        ranking.known_words,
        ranking.words,
        reason,
    )
    return Decision(tag, confidence, score, reason)


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
    """Answer messages with a ranker's rankings, a threshold and the intents' responses."""

    def __init__(self, ranker: Ranker, threshold: float, rng: random.Random | None = None) -> None:
        self.ranker = ranker
        self.rule = FallbackRule(threshold, ranker.bundle.config.unknown_word_penalty)
        self.intents_by_tag = ranker.bundle.intents_by_tag()
        self.rng = rng or random.Random()
        self.extractor = EntityPipeline.from_bundle(ranker.bundle)  # built once per model, swapped with it

    @property
    def bundle(self) -> Bundle:
        """Return the model this dialogue answers with: the one accessor, for the app and the rest."""
        return self.ranker.bundle

    @property
    def threshold(self) -> float:
        """Return the threshold in force: the fallback rule's, so the two can never disagree."""
        return self.rule.threshold

    def reply(self, message: str, context: str | None = None) -> Reply:
        """Answer one message in a conversation that is in ``context``."""
        return self.reply_to_ranking(self.ranker.rank(message), context)

    def reply_batch(self, messages: Sequence[str], context: str | None = None) -> list[Reply]:
        """Answer several independent messages with one forward pass."""
        return [self.reply_to_ranking(ranking, context) for ranking in self.ranker.rank_batch(messages)]

    def reply_to_ranking(self, ranking: Ranking, context: str | None) -> Reply:
        """Answer with the best eligible intent, or fall back (the rule is ``decide``)."""
        decision = decide(ranking, context, self.intents_by_tag, self.rule)
        tag, confidence = decision.intent, decision.confidence
        if decision.fallback:
            answer = self.intents_by_tag.get(FALLBACK_TAG)
            response = (
                self.rng.choice(answer.responses)
                if answer
                else fallback_response(self.bundle.config.language)
            )
            return Reply(
                response=response,
                intent=tag,
                confidence=confidence,
                fallback=True,
                context=context,
                ranking=ranking,
                quick_replies=answer.quick_replies if answer else (),
            )
        intent = self.intents_by_tag[tag]
        return Reply(
            response=self.rng.choice(intent.responses),
            intent=tag,
            confidence=confidence,
            fallback=False,
            context=next_context(intent, context),
            ranking=ranking,
            quick_replies=intent.quick_replies,
        )


def load_dialogue(model_path: str | Path, threshold: float | None = None, engine: str = "numpy") -> Dialogue:
    """Load a bundle and answer with it; the threshold defaults to the one stored in the bundle."""
    bundle = Bundle.load(model_path)
    log.info("loaded model %s (%d intents) from %s", bundle.fingerprint, len(bundle.labels), model_path)
    threshold = bundle.config.threshold if threshold is None else threshold
    return Dialogue(Ranker.from_bundle(bundle, engine).serve(), threshold)
