"""Choose a bundle's fallback threshold on held-out queries, with the rule the server applies.

Training calls this to set the threshold it saves; ``chatbot evaluate`` and ``chatbot train --oos-val``
build on the same predictions. Whether a query is answered is decided by the server's own rule
(``chatbot.dialogue.decision.decide``), each labelled query in the context its intent needs. Out-of-scope
queries count as their own class: one is right when the bot falls back on it, and so are labelled
queries of the ``fallback`` intent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.data.intents import FALLBACK_TAG, Intent
from chatbot.dialogue.decision import FallbackRule, decide
from chatbot.errors import IntentsError
from chatbot.text.hidden import find_hidden_character

OUT_OF_SCOPE = "<out-of-scope>"
BATCH_SIZE = 256
# Without the author's out-of-scope queries, the threshold may refuse at most this share of the
# held-out answers that would be right: compressed confidences (label smoothing, ensembles) then
# never cost more than this in answered accuracy.
IN_SCOPE_REFUSAL_BUDGET = 0.015


@dataclass(frozen=True)
class Predictions:
    """The answer of the fallback rule for each of a list of texts, at any threshold."""

    labels: list[str]  # the best eligible intent (the answer, unless the bot falls back)
    confidences: np.ndarray  # the highest threshold at which each is answered (-inf: never)


def load_out_of_scope(path: str | Path) -> list[str]:
    """Read out-of-scope queries, one per line (blank lines are skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise IntentsError(f"{path}: cannot read out-of-scope queries: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if found := find_hidden_character(line.strip()):
            raise IntentsError(
                f"{path}: line {number}: {found[1]} changes how the line reads without showing"
            )
    return [line.strip() for line in lines if line.strip()]


def load_off_topic() -> list[str]:
    """Read the generic off-topic queries shipped with the project (chatbot/resources/off_topic.txt)."""
    text = resources.files("chatbot").joinpath("resources/off_topic.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def labelled_examples(intents: Sequence[Intent]) -> tuple[list[str], list[str]]:
    """Return every pattern of the intents and its tag."""
    pairs = [(pattern, intent.tag) for intent in intents for pattern in intent.patterns]
    return [text for text, _ in pairs], [tag for _, tag in pairs]


def predict(
    engine: Ranker,
    texts: Sequence[str],
    contexts: Sequence[str | None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    """Rank texts in batches and apply the fallback rule to each (in its context, if given)."""
    intents_by_tag = engine.bundle.intents_by_tag()
    rule = FallbackRule(-math.inf, engine.bundle.config.unknown_word_penalty)  # any threshold, later
    contexts = contexts if contexts is not None else [None] * len(texts)
    labels: list[str] = []
    scores: list[float] = []
    for start in range(0, len(texts), BATCH_SIZE):
        rankings = engine.rank_batch(texts[start : start + BATCH_SIZE])
        for ranking, context in zip(rankings, contexts[start : start + BATCH_SIZE], strict=True):
            decision = decide(ranking, context, intents_by_tag, rule)
            labels.append(decision.intent)
            scores.append(decision.threshold_score)
        if progress:
            progress(len(rankings))
    return Predictions(labels, np.array(scores, dtype=np.float64))


def split_fallback_queries(
    texts: Sequence[str], tags: Sequence[str], out_of_scope: Sequence[str]
) -> tuple[list[str], list[str], list[str]]:
    """Move labelled queries of the fallback intent to the out-of-scope ones: falling back is right."""
    pairs = [(text, tag) for text, tag in zip(texts, tags, strict=True) if tag != FALLBACK_TAG]
    fallback = [text for text, tag in zip(texts, tags, strict=True) if tag == FALLBACK_TAG]
    return [text for text, _ in pairs], [tag for _, tag in pairs], [*out_of_scope, *fallback]


def predict_both(
    engine: Ranker,
    texts: Sequence[str],
    tags: Sequence[str],
    out_of_scope: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> tuple[Predictions, Predictions, np.ndarray]:
    """Classify labelled queries (each in its intent's context) and out-of-scope ones (in none);
    also say which labelled ones get their own intent."""
    intents_by_tag = engine.bundle.intents_by_tag()
    contexts = [intents_by_tag[tag].context_filter if tag in intents_by_tag else None for tag in tags]
    in_scope = predict(engine, texts, contexts, progress)
    outside = predict(engine, out_of_scope, progress=progress)
    correct = np.array([p == t for p, t in zip(in_scope.labels, tags, strict=True)], dtype=bool)
    return in_scope, outside, correct


def choose_threshold(
    correct: np.ndarray, in_scope_confidences: np.ndarray, out_of_scope_confidences: np.ndarray
) -> tuple[float, float]:
    """Return the threshold that maximises accuracy with out-of-scope as a class, and that accuracy.

    An in-scope query is right when its top label is correct and its confidence reaches the
    threshold; an out-of-scope query is right when its confidence is below it.
    """
    scores = np.concatenate([in_scope_confidences, out_of_scope_confidences, [0.0, 1.0]])
    candidates = np.unique(np.clip(scores[np.isfinite(scores)], 0.0, 1.0))  # a threshold is a probability
    in_scope_sorted = np.sort(in_scope_confidences[correct])
    out_sorted = np.sort(out_of_scope_confidences)
    kept_correct = len(in_scope_sorted) - np.searchsorted(in_scope_sorted, candidates, side="left")
    rejected_out = np.searchsorted(out_sorted, candidates, side="left")
    accuracy = (kept_correct + rejected_out) / (len(in_scope_confidences) + len(out_of_scope_confidences))
    best = int(np.argmax(accuracy))  # the lowest threshold among equals: fewest fallbacks
    return float(candidates[best]), float(accuracy[best])


def choose_threshold_in_scope(
    correct: np.ndarray,
    in_scope_confidences: np.ndarray,
    off_topic_confidences: np.ndarray,
    budget: float = IN_SCOPE_REFUSAL_BUDGET,
) -> tuple[float, dict[str, float]]:
    """Return a threshold chosen without the author's out-of-scope queries, and what it does.

    The threshold refuses at most ``budget`` of the held-out queries the model gets right. Below
    that cap it maximises balanced accuracy: the share of right answers kept plus the share of
    generic off-topic queries refused, each set weighing the same whatever its size, so that many
    generic queries cannot swamp a small validation set.
    """
    right = np.sort(in_scope_confidences[correct])
    off_topic = np.sort(off_topic_confidences)
    # Right answers that the rule refuses at any threshold (-inf) use up the budget first.
    refusable = max(int(np.floor(budget * len(right))), int(np.searchsorted(right, -math.inf, side="right")))
    cap = float(right[refusable]) if refusable < len(right) else 0.0
    scores = np.concatenate([right, off_topic, [0.0]])
    candidates = np.unique(np.clip(scores[np.isfinite(scores)], 0.0, max(cap, 0.0)))
    kept = (len(right) - np.searchsorted(right, candidates, side="left")) / max(len(right), 1)
    refused = np.searchsorted(off_topic, candidates, side="left") / max(len(off_topic), 1)
    best = int(np.argmax(kept + refused))  # the lowest threshold among equals: fewest fallbacks
    threshold = float(candidates[best])
    return threshold, {
        "accuracy": float(correct.mean()) if len(correct) else 0.0,
        "right_answers_kept": float(kept[best]),
        "off_topic_refused": float(refused[best]),
        "held_out_right": float(len(right)),
        "off_topic_queries": float(len(off_topic)),
    }


def calibrate(
    bundle: Bundle, validation: Sequence[Intent], out_of_scope: Sequence[str]
) -> tuple[Bundle, float]:
    """Return the bundle with the threshold that is best on validation and out-of-scope queries."""
    texts, tags, out_of_scope = split_fallback_queries(*labelled_examples(validation), out_of_scope)
    in_scope, outside, correct = predict_both(Ranker.from_bundle(bundle), texts, tags, out_of_scope)
    threshold, accuracy = choose_threshold(correct, in_scope.confidences, outside.confidences)
    return dataclasses.replace(bundle, config=bundle.config.replace(threshold=threshold)), accuracy


def calibrate_in_scope(
    bundle: Bundle, held_out: Sequence[Intent], off_topic: Sequence[str], model: Bundle | None = None
) -> tuple[Bundle, dict[str, float]]:
    """Return the bundle with a threshold chosen on held-out in-scope queries and generic off-topic
    ones (``choose_threshold_in_scope``), measured with ``model`` (default: the bundle itself)."""
    texts, tags, off_topic = split_fallback_queries(*labelled_examples(held_out), off_topic)
    in_scope, outside, correct = predict_both(Ranker.from_bundle(model or bundle), texts, tags, off_topic)
    threshold, summary = choose_threshold_in_scope(correct, in_scope.confidences, outside.confidences)
    return dataclasses.replace(bundle, config=bundle.config.replace(threshold=threshold)), summary
