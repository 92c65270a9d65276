"""Measure a model on labelled queries and out-of-scope ones: ``chatbot evaluate``'s report.

Everything here returns data (dicts, arrays); writing files and printing tables is for cli.py.
The classification metrics are scikit-learn's (``sklearn.metrics``), imported inside the functions
that use them, so serving never needs it. The predictions and the out-of-scope class are the
threshold calibration's (``chatbot.training.threshold``): the report judges the rule the server runs.

Entities are scored by exact span, as seqeval and the MTOP bench do: a found entity counts only
when its type, start and end all equal an annotation's. Each extractor is scored on the entity
types it can find (the tagger is not blamed for a date it was never meant to read), and the whole
pipeline on every annotation. The confusion table pairs overlapping spans whatever their bounds,
so it shows which types are taken for which, beside the annotations missed and the spurious finds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chatbot.classifier.extraction import EntityPipeline
from chatbot.classifier.ranker import Ranker
from chatbot.classifier.tagger import IntentRanking
from chatbot.data.annotations import AnnotatedText
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


Span = tuple[str, int, int]  # (entity type, start, end) in a text
NO_ENTITY = "(none)"  # the confusion table's row for spurious finds and column for missed annotations
PIPELINE = "pipeline"  # the report's name for every extractor together, as the bot runs them


def span_metrics(gold: Sequence[set[Span]], predicted: Sequence[set[Span]]) -> dict[str, Any]:
    """Return exact-span precision, recall, F1 and support per entity type and micro-averaged."""
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, gold]
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        for kind, *_ in gold_spans & predicted_spans:
            counts.setdefault(kind, [0, 0, 0])[0] += 1
        for kind, *_ in predicted_spans:
            counts.setdefault(kind, [0, 0, 0])[1] += 1
        for kind, *_ in gold_spans:
            counts.setdefault(kind, [0, 0, 0])[2] += 1
    total = [sum(column) for column in zip(*counts.values(), strict=True)] or [0, 0, 0]
    return {
        "overall": _ratios(*total),
        "per_entity": {kind: _ratios(*counts[kind]) for kind in sorted(counts)},
    }


def _ratios(true_positives: int, predicted: int, gold: int) -> dict[str, Any]:
    """Return precision, recall and F1 (0.0 where a ratio has no denominator) and the gold count."""
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def entity_confusion(gold: Sequence[set[Span]], predicted: Sequence[set[Span]]) -> dict[str, list]:
    """Return counts of (annotated type, found type) on overlapping spans, rows annotated.

    Each annotation pairs with at most one find, the one overlapping it most; an annotation no find
    overlaps is counted in the ``NO_ENTITY`` column (missed), a find no annotation overlaps in the
    ``NO_ENTITY`` row (spurious).
    """
    pairs: list[tuple[str, str]] = []
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        overlaps = sorted(
            (
                (_overlap(gold_span, found), gold_span, found)
                for gold_span in gold_spans
                for found in predicted_spans
                if _overlap(gold_span, found) > 0
            ),
            key=lambda item: (-item[0], item[1], item[2]),
        )
        paired_gold: set[Span] = set()
        paired_found: set[Span] = set()
        for _, gold_span, found in overlaps:
            if gold_span not in paired_gold and found not in paired_found:
                paired_gold.add(gold_span)
                paired_found.add(found)
                pairs.append((gold_span[0], found[0]))
        pairs += [(span[0], NO_ENTITY) for span in gold_spans - paired_gold]
        pairs += [(NO_ENTITY, span[0]) for span in predicted_spans - paired_found]
    labels = [*sorted({kind for pair in pairs for kind in pair} - {NO_ENTITY}), NO_ENTITY]
    index = {label: position for position, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for annotated, found_kind in pairs:
        counts[index[annotated], index[found_kind]] += 1
    return {"labels": labels, "counts": counts.tolist()}


def _overlap(first: Span, second: Span) -> int:
    """Return how many characters two spans share (0 or less when they are apart)."""
    return min(first[2], second[2]) - max(first[1], second[1])


def evaluate_entities(
    pipeline: EntityPipeline,
    examples: Sequence[AnnotatedText],
    rankings: Sequence[IntentRanking | None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score each extractor of a bot, and all of them together, on annotated examples; with the
    intent classifier's ``rankings`` of their texts the tagger reads them, as in serving."""
    rankings = rankings if rankings is not None else [None] * len(examples)
    gold = [{(a.entity, a.start, a.end) for a in example.annotations} for example in examples]
    report: dict[str, dict[str, Any]] = {}
    for extractor in pipeline.extractors:
        found = [
            {(e.entity, e.start, e.end) for e in extractor.extract(example.text, None, None, ranking)}
            for example, ranking in zip(examples, rankings, strict=True)
        ]
        own_gold = [{span for span in spans if span[0] in extractor.entities} for spans in gold]
        report[extractor.name] = {
            **span_metrics(own_gold, found),
            "entities": sorted(extractor.entities),
            "confusion": entity_confusion(own_gold, found),
        }
    found = [
        {(e.entity, e.start, e.end) for e in pipeline.extract(example.text, None, None, ranking)}
        for example, ranking in zip(examples, rankings, strict=True)
    ]
    report[PIPELINE] = {
        **span_metrics(gold, found),
        "entities": sorted({span[0] for spans in gold for span in spans}),
        "confusion": entity_confusion(gold, found),
    }
    return report


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
