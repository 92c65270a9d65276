"""Measure a model on labelled queries and out-of-scope ones: ``chatbot evaluate``'s report.

Everything here returns data (dicts, arrays); writing files and printing tables is for cli.py.
The classification metrics are scikit-learn's (``sklearn.metrics``), imported inside the functions
that use them, so serving never needs it. The predictions and the out-of-scope class are the
threshold calibration's (``chatbot.training.threshold``): the report judges the rule the server runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chatbot.classifier.ranker import Ranker
from chatbot.training.threshold import OUT_OF_SCOPE, predict_both, split_fallback_queries


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Return the share of predictions equal to the expected label (0.0 for no queries)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0


def per_intent_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, dict]:
    """Return precision, recall, F1 and support for each label (0.0 where a ratio has no denominator)."""
    from sklearn.metrics import precision_recall_fscore_support

    if not len(y_true):
        return {label: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for label in labels}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(labels), zero_division=0.0
    )
    return {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
        for label, p, r, f, n in zip(labels, precision, recall, f1, support, strict=True)
    }


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Return the counts of (expected, predicted) pairs among ``labels``, rows expected; other pairs
    are left out."""
    from sklearn.metrics import confusion_matrix as count_pairs

    if not len(y_true):
        return np.zeros((len(labels), len(labels)), dtype=np.int64)
    return count_pairs(y_true, y_pred, labels=list(labels))


def confused_pairs(y_true: Sequence[str], y_pred: Sequence[str], top: int = 20) -> list[dict[str, Any]]:
    """Return the most frequent (expected, predicted) mistakes, ties in label order."""
    labels, _, mistakes = _mistakes(y_true, y_pred)
    expected, predicted = np.nonzero(mistakes)
    order = np.argsort(-mistakes[expected, predicted], kind="stable")[:top]
    return [
        {
            "expected": labels[expected[i]],
            "predicted": labels[predicted[i]],
            "count": int(mistakes[expected[i], predicted[i]]),
        }
        for i in order
    ]


def most_confused(y_true: Sequence[str], y_pred: Sequence[str], top: int = 20) -> dict[str, list]:
    """Return the confusion matrix among the ``top`` labels most often in a mistake, expected or
    predicted (a small one to draw, however many intents the bot has)."""
    labels, counts, mistakes = _mistakes(y_true, y_pred)
    involved = mistakes.sum(axis=0) + mistakes.sum(axis=1)
    chosen = sorted(int(i) for i in np.argsort(-involved, kind="stable")[:top] if involved[i])
    if not chosen and labels:  # no mistake: the first label alone
        chosen = [0]
    return {"labels": [labels[i] for i in chosen], "counts": counts[np.ix_(chosen, chosen)].tolist()}


def evaluate(
    engine: Ranker,
    texts: Sequence[str],
    tags: Sequence[str],
    out_of_scope: Sequence[str] = (),
    threshold: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate the engine on labelled texts and out-of-scope queries; return one report dict."""
    threshold = engine.bundle.config.threshold if threshold is None else threshold
    texts, tags, out_of_scope = split_fallback_queries(texts, tags, out_of_scope)
    in_scope, outside, correct = predict_both(engine, texts, tags, out_of_scope, progress)
    kept = in_scope.confidences >= threshold
    answered = _answers(in_scope.labels, in_scope.confidences, threshold)
    answered_outside = _answers(outside.labels, outside.confidences, threshold)
    overall = {
        # Out-of-scope counts as a class, as calibration does: the figure the CI gates compare.
        "accuracy": accuracy([*tags, *[OUT_OF_SCOPE] * len(out_of_scope)], [*answered, *answered_outside]),
        "in_scope_accuracy": accuracy(tags, in_scope.labels),
        "in_scope_accuracy_at_threshold": accuracy(tags, answered),
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
            {"text": text, "expected": tag, "predicted": label, "confidence": _rounded(confidence)}
            for text, tag, label, confidence in zip(texts, tags, answered, in_scope.confidences, strict=True)
            if label != tag
        ]
        + [
            {
                "text": text,
                "expected": OUT_OF_SCOPE,
                "predicted": label,
                "confidence": _rounded(confidence),
            }
            for text, label, confidence in zip(
                out_of_scope, answered_outside, outside.confidences, strict=True
            )
            if label != OUT_OF_SCOPE
        ],
        "confusion_matrix": most_confused(tags, in_scope.labels),
        "confidences": {
            "in_scope_correct": _finite(in_scope.confidences[correct]),
            "in_scope_wrong": _finite(in_scope.confidences[~correct]),
            "out_of_scope": _finite(outside.confidences),
        },
    }


def _rounded(score: float) -> float | None:
    """Return a score for a JSON report: None for one that no threshold answers."""
    return round(float(score), 6) if math.isfinite(score) else None


def _answers(labels: Sequence[str], confidences: np.ndarray, threshold: float) -> list[str]:
    """Return what the bot answers: each predicted label, or OUT_OF_SCOPE below the threshold."""
    return [
        label if confidence >= threshold else OUT_OF_SCOPE
        for label, confidence in zip(labels, confidences, strict=True)
    ]


def _mistakes(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return every label, the confusion matrix, and that matrix without the right answers."""
    labels = sorted(set(y_true) | set(y_pred))
    counts = confusion_matrix(y_true, y_pred, labels)
    mistakes = counts.copy()
    np.fill_diagonal(mistakes, 0)
    return labels, counts, mistakes


def _finite(scores: np.ndarray) -> list[float]:
    return scores[np.isfinite(scores)].tolist()
