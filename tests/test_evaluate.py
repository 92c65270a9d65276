"""Evaluation metrics and threshold calibration, on hand-made figures and the tiny bot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatbot.classifier.bundle import Bundle
from chatbot.data.intents import load_intents, validate_intents
from chatbot.dialogue.decision import Dialogue
from chatbot.learning.evaluate import confused_pairs, evaluate, most_confused, per_intent_metrics
from chatbot.training.threshold import (
    OUT_OF_SCOPE,
    calibrate,
    choose_threshold,
    choose_threshold_in_scope,
    labelled_examples,
    load_out_of_scope,
)
from tests.support import DEFAULT_INTENTS, TINY_INTENTS, run_cli, write_json


def test_choose_threshold_maximises_accuracy_with_out_of_scope_as_a_class() -> None:
    correct = np.array([True, True, True, False])
    in_scope = np.array([0.9, 0.8, 0.45, 0.6])
    out_of_scope = np.array([0.3, 0.5, 0.7])
    threshold, accuracy = choose_threshold(correct, in_scope, out_of_scope)
    # At 0.8: the 0.9 and 0.8 correct ones stay; 0.3, 0.5 and 0.7 are rejected: 5 of 7 right.
    assert threshold == 0.8
    assert accuracy == pytest.approx(5 / 7)


def test_choose_threshold_prefers_no_threshold_without_out_of_scope_cost() -> None:
    threshold, accuracy = choose_threshold(np.array([True, True]), np.array([0.9, 0.2]), np.array([]))
    assert (threshold, accuracy) == (0.0, 1.0)


def test_threshold_in_scope_refuses_at_most_the_budget_of_right_answers() -> None:
    right = np.linspace(0.05, 0.95, 200)  # 200 right answers, evenly spread
    correct = np.ones(200, dtype=bool)
    off_topic = np.full(50, 0.99)  # off-topic queries as sure as any right answer: no help
    threshold, summary = choose_threshold_in_scope(correct, right, off_topic, budget=0.02)
    assert threshold <= right[4] and summary["right_answers_kept"] >= 0.98
    # Generic queries well below the right answers: the lowest threshold that refuses them all.
    threshold, summary = choose_threshold_in_scope(correct, right, np.full(500, 0.01), budget=0.02)
    assert threshold == pytest.approx(0.05) and summary["off_topic_refused"] == 1.0
    assert summary["right_answers_kept"] == 1.0


def test_threshold_in_scope_is_not_swamped_by_many_off_topic_queries() -> None:
    # 51 held-out phrases against 200 generic queries that overlap them: each set weighs the same,
    # so the threshold stays under the budget instead of refusing most right answers.
    rng = np.random.default_rng(0)
    right = rng.uniform(0.3, 1.0, 51)
    off_topic = rng.uniform(0.0, 0.99, 200)
    threshold, summary = choose_threshold_in_scope(np.ones(51, dtype=bool), right, off_topic)
    assert summary["right_answers_kept"] >= 0.98 and threshold <= np.sort(right)[1]


def test_answers_refused_at_any_threshold_use_up_the_budget_first() -> None:
    scores = np.array([-np.inf, -np.inf, *np.linspace(0.5, 0.9, 98)])
    threshold, _ = choose_threshold_in_scope(np.ones(100, dtype=bool), scores, np.array([]), budget=0.015)
    assert threshold == pytest.approx(0.5) or threshold == 0.0  # nothing more refused


def test_serving_evaluate_and_calibrate_apply_one_rule(tiny_bundle) -> None:
    """Serving (Dialogue), evaluate and calibrate's counting agree on every message and threshold."""
    from chatbot.classifier.ranker import Ranker
    from chatbot.training.threshold import predict_both, split_fallback_queries

    engine = Ranker.from_bundle(tiny_bundle)
    intents_by_tag = tiny_bundle.intents_by_tag()
    texts = ["hello", "where is my order", "number 777", "it is 4242", "bye bye", "qqq zzz", "hi order"]
    tags = ["greeting", "order", "order_number", "order_number", "goodbye", "greeting", "greeting"]
    out_of_scope = ["what is the weather", "zzz", "play some music"]
    texts, tags, out_of_scope = split_fallback_queries(texts, tags, out_of_scope)
    in_scope, outside, correct = predict_both(engine, texts, tags, out_of_scope)
    for threshold in [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.95]:
        dialogue = Dialogue(engine, threshold)
        served = [
            dialogue.reply(text, intents_by_tag[tag].context_filter)
            for text, tag in zip(texts, tags, strict=True)
        ]
        served_outside = [dialogue.reply(text) for text in out_of_scope]
        report = evaluate(engine, texts, tags, out_of_scope, threshold)["overall"]
        answered_right = [not r.fallback and r.intent == tag for r, tag in zip(served, tags, strict=True)]
        assert report["in_scope_accuracy_at_threshold"] == pytest.approx(np.mean(answered_right))
        assert report["out_of_scope_recall"] == pytest.approx(np.mean([r.fallback for r in served_outside]))
        kept = in_scope.confidences >= threshold
        assert (correct & kept).tolist() == answered_right  # what calibrate counts
        assert (outside.confidences < threshold).tolist() == [r.fallback for r in served_outside]
        assert in_scope.labels == [r.intent for r in served]


def test_per_intent_metrics() -> None:
    report = per_intent_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b", "c"])
    assert report["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert report["b"]["precision"] == pytest.approx(2 / 3)
    assert report["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_confused_pairs_are_counted_most_first() -> None:
    pairs = confused_pairs(["a", "a", "a", "b", "c"], ["b", "b", "a", "a", "c"])
    assert pairs == [
        {"expected": "a", "predicted": "b", "count": 2},
        {"expected": "b", "predicted": "a", "count": 1},
    ]


def test_most_confused_keeps_the_intents_most_often_in_a_mistake() -> None:
    y_true = ["a", "a", "a", "b", "c", "d"]
    y_pred = ["b", "b", "a", "b", "c", "c"]  # a -> b twice, d -> c once
    assert most_confused(y_true, y_pred, top=2) == {"labels": ["a", "b"], "counts": [[1, 2], [0, 1]]}
    assert most_confused(y_true, y_pred)["labels"] == ["a", "b", "c", "d"]
    assert most_confused(["b", "a"], ["b", "a"]) == {"labels": ["a"], "counts": [[1]]}  # no mistake
    assert most_confused([], []) == {"labels": [], "counts": []}


def test_load_out_of_scope_skips_blank_lines(tmp_path) -> None:
    path = tmp_path / "oos.txt"
    path.write_text("play music\n\n  book a flight  \n", encoding="utf-8")
    assert load_out_of_scope(path) == ["play music", "book a flight"]


def test_evaluate_the_tiny_bot(engine) -> None:
    texts, tags = labelled_examples(validate_intents(TINY_INTENTS))
    report = evaluate(engine, texts, tags, ["zzz qqq", "asdf"], threshold=0.5)
    assert report["overall"]["in_scope_accuracy"] == 1.0
    assert report["overall"]["out_of_scope_recall"] == 1.0  # no known word: always a fallback
    assert report["metadata"]["in_scope_queries"] == 20
    assert set(report["per_intent"]) == {"greeting", "goodbye", "order", "order_number"}
    overall = report["overall"]
    right = overall["in_scope_accuracy_at_threshold"] * 20 + overall["out_of_scope_recall"] * 2
    assert overall["accuracy"] == pytest.approx(right / 22)  # out-of-scope counts as a class
    no_mistake = {"labels": ["goodbye"], "counts": [[tags.count("goodbye")]]}  # the first intent alone
    assert report["confusion_matrix"] == no_mistake
    assert all(
        error["expected"] == OUT_OF_SCOPE or error["predicted"] == OUT_OF_SCOPE for error in report["errors"]
    )


def test_calibrate_stores_the_threshold_in_the_bundle(tiny_bundle) -> None:
    validation = validate_intents(TINY_INTENTS)
    calibrated, accuracy = calibrate(tiny_bundle, validation, ["zzz", "where is the moon"])
    assert 0.0 <= calibrated.config.threshold <= 1.0
    assert accuracy >= 20 / 22
    assert calibrated.weights is tiny_bundle.weights


@pytest.mark.slow
def test_train_with_validation_calibrates_and_evaluate_writes_reports(tmp_path) -> None:
    train_file = write_json(tmp_path / "train.json", TINY_INTENTS)
    validation = {
        "intents": [
            {"tag": "greeting", "patterns": ["hello there", "hey"], "responses": ["-"]},
            {"tag": "goodbye", "patterns": ["bye bye"], "responses": ["-"]},
        ]
    }
    validation_file = write_json(tmp_path / "val.json", validation)
    oos = tmp_path / "oos.txt"
    oos.write_text("what is the capital of france\nplay some jazz\n", encoding="utf-8")
    model = tmp_path / "model.h5"
    trained = run_cli(
        "train",
        "--data",
        str(train_file),
        "--val",
        str(validation_file),
        "--oos-val",
        str(oos),
        "--out",
        str(model),
    )
    assert trained.returncode == 0, trained.stderr
    assert "on validation + out-of-scope" in trained.stdout
    # Training chose the threshold on validation + out-of-scope itself: choosing it again keeps it.
    bundle = Bundle.load(model)
    chosen, _ = calibrate(bundle, load_intents(validation_file), load_out_of_scope(oos))
    assert chosen.config.threshold == bundle.config.threshold
    assert (tmp_path / "model.training.png").exists()  # every bot trains its LSTM: its curves are drawn
    evaluated = run_cli(
        "evaluate",
        "--data",
        str(validation_file),
        "--oos",
        str(oos),
        "--model",
        str(model),
        "--out",
        str(tmp_path / "ev"),
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert "in-scope accuracy (no threshold)" in evaluated.stdout
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["metadata"] == {**report["metadata"], "in_scope_queries": 3, "out_of_scope_queries": 2}
    assert set(report) == {"metadata", "overall", "confused_pairs", "confusion_matrix"}
    assert set(json.loads((tmp_path / "ev" / "intent_report.json").read_text())) >= {"greeting", "goodbye"}
    assert isinstance(json.loads((tmp_path / "ev" / "errors.json").read_text()), list)
    for name in ("confusion_matrix.png", "confidence_histogram.png"):
        assert (tmp_path / "ev" / name).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow  # trains the default bot twice
def test_oos_val_without_val_joins_the_off_topic_queries_of_the_threshold(tmp_path) -> None:
    oos = tmp_path / "oos.txt"
    oos.write_text("what is the weather tomorrow\nwho won the match\nbook me a flight\n", encoding="utf-8")
    args = ("train", "--data", str(DEFAULT_INTENTS), "--out", str(tmp_path / "m.h5"))
    without = run_cli(*args)
    with_oos = run_cli(*args, "--oos-val", str(oos))
    assert without.returncode == 0 and with_oos.returncode == 0, with_oos.stderr
    assert "of 77 off-topic queries" in without.stderr
    assert "of 80 off-topic queries" in with_oos.stderr  # the 3 queries joined the generic 77


@pytest.mark.slow  # a CLI process
def test_validation_tags_must_be_trained(tmp_path) -> None:
    train_file = write_json(tmp_path / "train.json", TINY_INTENTS)
    validation = write_json(
        tmp_path / "val.json", {"intents": [{"tag": "weather", "patterns": ["rain?"], "responses": ["-"]}]}
    )
    result = run_cli(
        "train", "--data", str(train_file), "--val", str(validation), "--out", str(tmp_path / "m.h5")
    )
    assert result.returncode == 2
    assert "validation intents not in the training data: weather" in result.stderr
