"""Compare two models' evaluation reports before deploying: ``chatbot evaluate --compare OLD.h5``.

Built on the report dicts of ``chatbot.learning.evaluate.evaluate``, run on the same queries for both models.
"Accuracy" (the report's ``overall.accuracy``) counts out-of-scope as a class, as calibration does:
an in-scope query is right when it is answered with its intent, an out-of-scope one when the bot
falls back. The gates (``--fail-under``, ``--max-drop``) turn the comparison into an exit status
for CI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbot.training.threshold import OUT_OF_SCOPE, split_fallback_queries

HEADLINE_METRICS = (
    "accuracy",
    "in_scope_accuracy",
    "in_scope_accuracy_at_threshold",
    "out_of_scope_recall",
    "in_scope_fallback_rate",
    "threshold",
)


def answers(
    report: dict[str, Any], texts: Sequence[str], tags: Sequence[str], out_of_scope: Sequence[str]
) -> list[str]:
    """Return what the model answered each query with (an intent or OUT_OF_SCOPE), from its report.

    The report lists only its errors; every query not among them was answered right.
    """
    wrong = {(error["text"], error["expected"]): error["predicted"] for error in report["errors"]}
    return [wrong.get(query, query[1]) for query in queries(texts, tags, out_of_scope)]


def queries(texts: Sequence[str], tags: Sequence[str], out_of_scope: Sequence[str]) -> list[tuple[str, str]]:
    """Return every query with the answer expected, as ``evaluate`` counts them."""
    texts, tags, out_of_scope = split_fallback_queries(texts, tags, out_of_scope)
    return [*zip(texts, tags, strict=True), *((text, OUT_OF_SCOPE) for text in out_of_scope)]


def compare_reports(
    old: dict[str, Any],
    new: dict[str, Any],
    texts: Sequence[str],
    tags: Sequence[str],
    out_of_scope: Sequence[str] = (),
) -> dict[str, Any]:
    """Put two reports on the same queries side by side: headline figures, intents and answers."""
    figures = {
        name: {"old": old_value, "new": new_value, "change": new_value - old_value}
        for name in HEADLINE_METRICS
        if (old_value := old["overall"].get(name)) is not None
        and (new_value := new["overall"].get(name)) is not None
    }
    per_intent = []
    for intent in sorted(set(old["per_intent"]) | set(new["per_intent"])):
        old_f1 = old["per_intent"].get(intent, {}).get("f1", 0.0)
        new_f1 = new["per_intent"].get(intent, {}).get("f1", 0.0)
        if abs(new_f1 - old_f1) > 1e-9:
            per_intent.append(
                {"intent": intent, "old_f1": old_f1, "new_f1": new_f1, "change": new_f1 - old_f1}
            )
    old_answers = answers(old, texts, tags, out_of_scope)
    new_answers = answers(new, texts, tags, out_of_scope)
    changed = [
        {"text": text, "expected": expected, "old": before, "new": after}
        for (text, expected), before, after in zip(
            queries(texts, tags, out_of_scope), old_answers, new_answers, strict=True
        )
        if before != after
    ]
    return {
        "models": {"old": old["metadata"], "new": new["metadata"]},
        "overall": figures,
        "per_intent": sorted(per_intent, key=lambda row: row["change"]),
        "changed_answers": changed,
    }


def gate_failures(
    new: dict[str, Any], old: dict[str, Any] | None, fail_under: float | None, max_drop: float | None
) -> list[str]:
    """Return why the new model must not be deployed (an empty list: it may).

    ``fail_under`` is the lowest accuracy allowed, as a fraction (0.9) or in percent (90);
    ``max_drop`` the most accuracy it may lose against the old model, in percentage points.
    """
    failures = []
    new_accuracy = new["overall"]["accuracy"]
    if fail_under is not None:
        floor = fail_under / 100 if fail_under > 1 else fail_under
        if new_accuracy < floor:
            failures.append(f"accuracy {new_accuracy:.2%} is under --fail-under {floor:.2%}")
    if max_drop is not None and old is not None:
        drop = (old["overall"]["accuracy"] - new_accuracy) * 100
        if drop > max_drop:
            failures.append(f"accuracy dropped {drop:.2f} points, more than --max-drop {max_drop:g}")
    return failures


def format_comparison(comparison: dict[str, Any], examples: int = 10) -> str:
    """Format a comparison as plain-text tables: headline figures, intents that moved, changed answers."""
    models = comparison["models"]
    lines = [f"{'':<34}{'old':>10}{'new':>10}{'change':>10}"]
    lines.append(f"{'model':<34}{models['old']['model'][:9]:>10}{models['new']['model'][:9]:>10}")
    for name, figure in comparison["overall"].items():
        number = "{:>10.4f}" if name == "threshold" else "{:>10.2%}"
        lines.append(
            f"{name.replace('_', ' '):<34}"
            + number.format(figure["old"])
            + number.format(figure["new"])
            + f"{figure['change'] * (1 if name == 'threshold' else 100):>+10.2f}"
        )
    if comparison["per_intent"]:
        lines += ["", f"{'intents whose F1 changed':<34}{'old':>10}{'new':>10}{'change':>10}"]
        lines += [
            f"{row['intent']:<34}{row['old_f1']:>10.2f}{row['new_f1']:>10.2f}{row['change']:>+10.2f}"
            for row in comparison["per_intent"]
        ]
    changed = comparison["changed_answers"]
    lines += ["", f"{len(changed)} queries answered differently" + (":" if changed else "")]
    lines += [
        f"  {row['text'][:50]!r}: {row['old']} -> {row['new']} (expected {row['expected']})"
        for row in changed[:examples]
    ]
    if len(changed) > examples:
        lines.append(f"  ... and {len(changed) - examples} more in comparison.json")
    return "\n".join(lines)
