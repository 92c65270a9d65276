"""Measure a model on labelled queries and out-of-scope ones, and calibrate its fallback threshold.

Everything here returns data (dicts, arrays); writing files and printing tables is for cli.py.
Out-of-scope queries count as their own class: one is right when the bot falls back on it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.bundle import Bundle
from chatbot.data import Intent
from chatbot.dialogue import fallback_score
from chatbot.engine import Engine
from chatbot.errors import IntentsError

OUT_OF_SCOPE = "<out-of-scope>"
BATCH_SIZE = 256


@dataclass(frozen=True)
class Predictions:
    """The top label and its confidence for each of a list of texts."""

    labels: list[str]
    confidences: np.ndarray


def load_out_of_scope(path: str | Path) -> list[str]:
    """Read out-of-scope queries, one per line (blank lines are skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise IntentsError(f"{path}: cannot read out-of-scope queries: {exc}") from exc
    return [line.strip() for line in lines if line.strip()]


def labelled_examples(intents: Sequence[Intent]) -> tuple[list[str], list[str]]:
    """Return every pattern of the intents and its tag."""
    pairs = [(pattern, intent.tag) for intent in intents for pattern in intent.patterns]
    return [text for text, _ in pairs], [tag for _, tag in pairs]


def predict(
    engine: Engine, texts: Sequence[str], progress: Callable[[int], None] | None = None
) -> Predictions:
    """Classify texts in batches and return the top label and confidence of each."""
    labels: list[str] = []
    confidences: list[float] = []
    for start in range(0, len(texts), BATCH_SIZE):
        for ranking in engine.rank_batch(texts[start : start + BATCH_SIZE]):
            label, confidence = ranking.top
            labels.append(label)
            # The dialogue's own fallback score; no known word means a fallback at any threshold.
            score = fallback_score(confidence, ranking, engine.bundle.config.unknown_word_penalty)
            confidences.append(score if ranking.known_words else -1.0)
        if progress:
            progress(min(BATCH_SIZE, len(texts) - start))
    return Predictions(labels, np.array(confidences, dtype=np.float64))


def predict_both(
    engine: Engine,
    texts: Sequence[str],
    tags: Sequence[str],
    out_of_scope: Sequence[str],
    progress: Callable[[int], None] | None = None,
) -> tuple[Predictions, Predictions, np.ndarray]:
    """Classify labelled and out-of-scope queries; also say which labelled ones are right."""
    in_scope = predict(engine, texts, progress)
    outside = predict(engine, out_of_scope, progress)
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
    candidates = np.unique(np.clip(scores, 0.0, 1.0))  # a threshold is a probability
    in_scope_sorted = np.sort(in_scope_confidences[correct])
    out_sorted = np.sort(out_of_scope_confidences)
    kept_correct = len(in_scope_sorted) - np.searchsorted(in_scope_sorted, candidates, side="left")
    rejected_out = np.searchsorted(out_sorted, candidates, side="left")
    accuracy = (kept_correct + rejected_out) / (len(in_scope_confidences) + len(out_of_scope_confidences))
    best = int(np.argmax(accuracy))  # the lowest threshold among equals: fewest fallbacks
    return float(candidates[best]), float(accuracy[best])


def per_intent_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, dict]:
    """Return precision, recall, F1 and support for each label."""
    true_positive = Counter(t for t, p in zip(y_true, y_pred, strict=True) if t == p)
    predicted = Counter(y_pred)
    support = Counter(y_true)
    report = {}
    for label in labels:
        precision = true_positive[label] / predicted[label] if predicted[label] else 0.0
        recall = true_positive[label] / support[label] if support[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support[label]}
    return report


def confused_pairs(y_true: Sequence[str], y_pred: Sequence[str], top: int = 20) -> list[dict[str, Any]]:
    """Return the most frequent (expected, predicted) mistakes."""
    mistakes = Counter((t, p) for t, p in zip(y_true, y_pred, strict=True) if t != p)
    return [{"expected": t, "predicted": p, "count": n} for (t, p), n in mistakes.most_common(top)]


def evaluate(
    engine: Engine,
    texts: Sequence[str],
    tags: Sequence[str],
    out_of_scope: Sequence[str] = (),
    threshold: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the engine on labelled texts and out-of-scope queries; return one report dict."""
    threshold = engine.bundle.config.threshold if threshold is None else threshold
    in_scope, outside, correct = predict_both(engine, texts, tags, out_of_scope, progress)
    kept = in_scope.confidences >= threshold
    answered = [p if k else OUT_OF_SCOPE for p, k in zip(in_scope.labels, kept, strict=True)]
    overall = {
        "in_scope_accuracy": float(correct.mean()) if len(correct) else 0.0,
        "in_scope_accuracy_at_threshold": float((correct & kept).mean()) if len(correct) else 0.0,
        "in_scope_fallback_rate": float((~kept).mean()) if len(kept) else 0.0,
        "threshold": threshold,
    }
    if len(out_of_scope):
        overall["out_of_scope_recall"] = float((outside.confidences < threshold).mean())
    labels = sorted(set(tags) | set(in_scope.labels))
    return {
        "metadata": {
            "model": engine.bundle.fingerprint,
            "trained_at": engine.bundle.created_at,
            "in_scope_queries": len(texts),
            "out_of_scope_queries": len(out_of_scope),
        },
        "overall": overall,
        "per_intent": per_intent_metrics(tags, in_scope.labels, labels),
        "confused_pairs": confused_pairs(tags, in_scope.labels),
        "errors": [
            {"text": text, "expected": tag, "predicted": label, "confidence": round(float(confidence), 6)}
            for text, tag, label, confidence in zip(texts, tags, answered, in_scope.confidences, strict=True)
            if label != tag
        ]
        + [
            {
                "text": text,
                "expected": OUT_OF_SCOPE,
                "predicted": label,
                "confidence": round(float(confidence), 6),
            }
            for text, label, confidence in zip(out_of_scope, outside.labels, outside.confidences, strict=True)
            if confidence >= threshold
        ],
        "predictions": {"expected": list(tags), "predicted": in_scope.labels},
        "confidences": {
            "in_scope_correct": in_scope.confidences[correct].tolist(),
            "in_scope_wrong": in_scope.confidences[~correct].tolist(),
            "out_of_scope": outside.confidences.tolist(),
        },
    }


def calibrate(
    bundle: Bundle, validation: Sequence[Intent], out_of_scope: Sequence[str]
) -> tuple[Bundle, float]:
    """Return the bundle with the threshold that is best on validation and out-of-scope queries."""
    texts, tags = labelled_examples(validation)
    in_scope, outside, correct = predict_both(Engine.from_bundle(bundle), texts, tags, out_of_scope)
    threshold, accuracy = choose_threshold(correct, in_scope.confidences, outside.confidences)
    return dataclasses.replace(bundle, config=bundle.config.replace(threshold=threshold)), accuracy
