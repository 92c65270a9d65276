"""``chatbot evaluate --compare``: two models side by side on the same queries, and the CI gates."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.data.intents import validate_intents
from chatbot.learning.compare import answers, compare_reports, format_comparison, gate_failures
from chatbot.learning.evaluate import evaluate
from chatbot.training.threshold import OUT_OF_SCOPE, labelled_examples
from tests.support import TINY_INTENTS, run_cli, with_output_biases, write_json

OUT_OF_SCOPE_QUERIES = ["zzz qqq", "what is the capital of peru"]


def biased(bundle: Bundle, tag: str, amount: float) -> Bundle:
    """Return the bundle with the output biases of one intent raised: a worse model that says it often."""
    index = bundle.labels.index(tag)

    def raise_tag(bias: np.ndarray) -> np.ndarray:
        bias[index] += amount
        return bias

    bundle = with_output_biases(bundle, raise_tag)
    ngram_model = bundle.ngram_model
    if ngram_model is not None:  # the wide half votes too: bias it the same way
        intercept = np.array(ngram_model.intercept, copy=True)
        intercept[bundle.labels.index(tag)] += amount
        ngram_model = dataclasses.replace(ngram_model, intercept=intercept)
    return dataclasses.replace(bundle, ngram_model=ngram_model, created_at="2031-01-01T00:00:00+00:00")


def report_for(bundle: Bundle) -> tuple[dict, list[str], list[str]]:
    texts, tags = labelled_examples(validate_intents(TINY_INTENTS))
    return evaluate(Ranker.from_bundle(bundle), texts, tags, OUT_OF_SCOPE_QUERIES, threshold=0.5), texts, tags


def test_answers_rebuild_every_query_from_the_errors(tiny_bundle: Bundle) -> None:
    report, texts, tags = report_for(tiny_bundle)
    rebuilt = answers(report, texts, tags, OUT_OF_SCOPE_QUERIES)
    assert len(rebuilt) == len(texts) + len(OUT_OF_SCOPE_QUERIES)
    right = sum(
        answer == expected
        for answer, expected in zip(rebuilt, [*tags, OUT_OF_SCOPE, OUT_OF_SCOPE], strict=True)
    )
    assert right / len(rebuilt) == pytest.approx(report["overall"]["accuracy"])


def test_a_worse_model_shows_its_drop_intents_and_changed_answers(tiny_bundle: Bundle) -> None:
    old, texts, tags = report_for(tiny_bundle)
    new, _, _ = report_for(biased(tiny_bundle, "greeting", 6.0))
    comparison = compare_reports(old, new, texts, tags, OUT_OF_SCOPE_QUERIES)
    assert comparison["overall"]["accuracy"]["change"] < -0.1
    assert comparison["per_intent"][0]["change"] < 0
    changed = comparison["changed_answers"]
    assert "greeting" in {row["new"] for row in changed}
    assert all(row["old"] == row["expected"] != row["new"] for row in changed)  # only answers lost
    table = format_comparison(comparison)
    assert "accuracy" in table and "queries answered differently" in table
    assert gate_failures(new, old, fail_under=None, max_drop=5) == [
        f"accuracy dropped {(old['overall']['accuracy'] - new['overall']['accuracy']) * 100:.2f} points, more than --max-drop 5"
    ]
    assert gate_failures(old, new, fail_under=None, max_drop=5) == []


@pytest.mark.parametrize(("fail_under", "fails"), [(0.5, False), (50, False), (0.99, True), (99, True)])
def test_fail_under_takes_a_fraction_or_a_percentage(fail_under: float, fails: bool) -> None:
    report = {"metadata": {"in_scope_queries": 10, "out_of_scope_queries": 0}, "overall": {"accuracy": 0.9}}
    assert bool(gate_failures(report, None, fail_under, None)) is fails


@pytest.mark.slow
def test_evaluate_compare_exits_1_when_the_new_model_drops(
    tmp_path: Path, tiny_bundle: Bundle, tiny_model_path: Path
) -> None:
    worse = biased(tiny_bundle, "greeting", 6.0).save(tmp_path / "worse.h5")
    data = write_json(tmp_path / "intents.json", TINY_INTENTS)
    common = ["evaluate", "--data", str(data), "--out", str(tmp_path / "eval")]
    refused = run_cli(*common, "--model", str(worse), "--compare", str(tiny_model_path), "--max-drop", "1")
    assert refused.returncode == 1, refused.stderr
    assert "FAILED: accuracy dropped" in refused.stderr and "queries answered differently" in refused.stdout
    assert json.loads((tmp_path / "eval" / "comparison.json").read_text())["changed_answers"]
    accepted = run_cli(*common, "--model", str(tiny_model_path), "--compare", str(worse), "--max-drop", "1")
    assert accepted.returncode == 0, accepted.stderr
