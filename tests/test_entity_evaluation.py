"""``chatbot evaluate``'s entity report: exact-span figures, the type confusion table, each extractor."""

from __future__ import annotations

import copy
import json

import pytest

from chatbot.classifier.extraction import EntityPipeline, Extractor
from chatbot.data.annotations import parse_annotated
from chatbot.data.entities import Entity
from chatbot.learning.evaluate import (
    NO_ENTITY,
    PIPELINE,
    entity_confusion,
    evaluate_entities,
    span_metrics,
)
from tests.support import ANNOTATED_ORDER, TINY_INTENTS, run_cli, write_json


def test_span_metrics_count_exact_spans_only() -> None:
    gold = [{("city", 8, 14), ("date", 18, 26)}, {("city", 0, 5)}]
    # One exact city; a city one character short (wrong); a date found as a city (wrong); a date missed.
    predicted = [{("city", 8, 14), ("city", 18, 26)}, {("city", 0, 4)}]
    report = span_metrics(gold, predicted)
    city, date = report["per_entity"]["city"], report["per_entity"]["date"]
    assert (city["precision"], city["recall"], city["support"]) == (pytest.approx(1 / 3), 0.5, 2)
    assert city["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert (date["precision"], date["recall"], date["f1"], date["support"]) == (0.0, 0.0, 0.0, 1)
    assert report["overall"] == {
        "precision": pytest.approx(1 / 3),
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(1 / 3),
        "support": 3,
    }


def test_span_metrics_of_nothing_are_zero() -> None:
    assert span_metrics([set(), set()], [set(), set()]) == {
        "overall": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "per_entity": {},
    }


def test_the_confusion_table_pairs_overlapping_spans_and_counts_missed_and_spurious() -> None:
    gold = [
        {("city", 0, 6), ("date", 10, 18), ("name", 30, 35)},
        {("city", 0, 5)},
    ]
    predicted = [
        # city found with a wrong end (still a city over a city), the date read as a city,
        # the name missed, and one find where nothing is annotated.
        {("city", 0, 4), ("city", 10, 18), ("date", 40, 44)},
        # Two finds over one annotation: the larger overlap pairs, the other is spurious.
        {("name", 0, 2), ("city", 1, 5)},
    ]
    table = entity_confusion(gold, predicted)
    assert table["labels"] == ["city", "date", "name", NO_ENTITY]
    counts = {
        (annotated, found): table["counts"][row][column]
        for row, annotated in enumerate(table["labels"])
        for column, found in enumerate(table["labels"])
        if table["counts"][row][column]
    }
    assert counts == {
        ("city", "city"): 2,
        ("date", "city"): 1,
        ("name", NO_ENTITY): 1,
        (NO_ENTITY, "date"): 1,
        (NO_ENTITY, "name"): 1,
    }


def fixed(*found: tuple[str, int, int], name: str = "fake") -> Extractor:
    """Return an extractor that finds the same spans in every text."""
    entities = frozenset(kind for kind, _, _ in found)
    return Extractor(
        name,
        entities,
        lambda text, now, zone, ranking: [Entity(kind, text[s:e], s, e, name) for kind, s, e in found],
    )


def test_each_extractor_is_scored_on_its_own_types_and_the_pipeline_on_all() -> None:
    examples = [parse_annotated("ship to [Berlin](city) on [Friday](date)")]
    # The rules find the city; the tagger finds the city too (hidden behind the rules in the
    # pipeline) and a wrong date span; nothing else knows dates.
    rules = fixed(("city", 8, 14), name="declared")
    tagger = fixed(("city", 8, 14), ("date", 15, 24), name="tagger")
    report = evaluate_entities(EntityPipeline([rules, tagger]), examples)
    assert list(report) == ["declared", "tagger", PIPELINE]
    assert report["declared"]["overall"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert report["declared"]["entities"] == ["city"]  # the date is not the rules' to find
    assert report["tagger"]["overall"]["precision"] == 0.5
    assert report["tagger"]["overall"]["recall"] == 0.5
    assert report[PIPELINE]["per_entity"]["date"]["recall"] == 0.0
    assert report[PIPELINE]["overall"]["support"] == 2
    assert report[PIPELINE]["confusion"]["labels"] == ["city", "date", NO_ENTITY]
    assert report[PIPELINE]["confusion"]["counts"] == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_a_bot_without_extractors_scores_only_the_pipeline() -> None:
    report = evaluate_entities(EntityPipeline([]), [parse_annotated("to [Rome](city)")])
    assert list(report) == [PIPELINE]
    assert report[PIPELINE]["overall"]["recall"] == 0.0
    assert report[PIPELINE]["confusion"]["counts"] == [[0, 1], [0, 0]]


@pytest.mark.slow
def test_evaluate_reports_entities_per_extractor(tmp_path) -> None:
    """Train a bot with a tagger and built-in dates through the CLI, then evaluate annotated phrases."""
    data = copy.deepcopy(TINY_INTENTS)
    data["intents"][2]["patterns"] += [*ANNOTATED_ORDER, "ship it to [Vienna](city) [tomorrow](date)"]
    data["builtin_entities"] = ["date"]
    model = tmp_path / "model.h5"
    run_cli(
        "train", "--data", str(write_json(tmp_path / "train.json", data)), "--out", str(model), check=True
    )
    test_data = {
        "builtin_entities": ["date"],
        "intents": [
            {
                "tag": "order",
                "patterns": ["ship my order to [Berlin](city) [tomorrow](date)", "send it to [Paris](city)"],
                "responses": ["-"],
            },
            {"tag": "greeting", "patterns": ["hello there"], "responses": ["-"]},
        ],
    }
    out = tmp_path / "ev"
    evaluated = run_cli(
        "evaluate", "--data", str(write_json(tmp_path / "test.json", test_data)), "--model", str(model),
        "--out", str(out),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert "entities (exact span)" in evaluated.stdout and "entity_report.json" in evaluated.stdout
    report = json.loads((out / "entity_report.json").read_text())
    assert list(report) == ["builtin", "tagger", PIPELINE]
    assert report["builtin"]["entities"] == ["date"]
    assert report["builtin"]["per_entity"]["date"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 1,
    }
    assert report["tagger"]["per_entity"]["city"]["support"] == 2
    assert report[PIPELINE]["overall"]["support"] == 3
    assert report[PIPELINE]["confusion"]["labels"][-1] == NO_ENTITY
    assert (out / "entity_confusion.png").read_bytes().startswith(b"\x89PNG")
    # Test phrases without annotations: no entity report at all (nothing to score against).
    plain = run_cli("evaluate", "--data", str(write_json(tmp_path / "plain.json", TINY_INTENTS)),
                    "--model", str(model), "--out", str(tmp_path / "plain"))  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "entities (exact span)" not in plain.stdout
    assert not (tmp_path / "plain" / "entity_report.json").exists()


def test_the_rankings_given_reach_each_extractor_and_the_pipeline() -> None:
    examples = [parse_annotated("to [Rome](city)"), parse_annotated("hello")]
    rankings = [(("order", 0.9), ("greeting", 0.1)), (("greeting", 1.0),)]
    seen: list[object] = []

    def recording(text, now, zone, ranking) -> list[Entity]:
        seen.append((text, ranking))
        return []

    evaluate_entities(
        EntityPipeline([Extractor("tagger", frozenset({"city"}), recording)]), examples, rankings
    )
    # Once alone, once in the pipeline; without rankings the extractors get None.
    assert seen == [(example.text, ranking) for example, ranking in zip(examples, rankings, strict=True)] * 2
    seen.clear()
    evaluate_entities(EntityPipeline([Extractor("tagger", frozenset({"city"}), recording)]), examples)
    assert seen == [(example.text, None) for example in examples] * 2
