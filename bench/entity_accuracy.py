"""Measure the learned entity tagger on MTOP beside a CRF yardstick fitted in the same run.

Each language's ``train.entities.json`` is split per intent (80% to fit, 20% to score; seeded);
both extractors are fitted on the same 80% and scored by exact-span micro F1 (type, start and end
must all match) on the other 20%. The yardstick is a linear-chain CRF (python-crfsuite) over
whitespace tokens with BIO tags and window features (word, affixes, shape, two words either side),
as in the dataset's README. Target: the tagger >= the CRF + 5 points in every language.

The tagger decodes with an intent prior. As in serving, the intent comes from the bot's intent
classifier: one is trained on the same 80% (their texts under their intents, as ``chatbot train``
trains, via chatbot.training.train.train with the language's default config) and its ranking of
each held-out text is passed to the tagger. The tagger is also scored with its own intent head
alone (no ranking) and with the two mixed, from the same fits.

    .venv/bin/python -m bench.entity_accuracy [--mtop ../shared/datasets/mtop] [--languages en,de]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.classifier.tagger import IntentRanking, Tagger, TaggerConfig
from chatbot.data.annotations import AnnotatedText, Annotation
from chatbot.training.tagger import fit_tagger

ROOT = Path(__file__).resolve().parent.parent
LANGUAGES = ("en", "de", "es", "fr", "hi", "th")
VALIDATION_SHARE = 0.2
SEED = 0
MARGIN = 5.0  # points the tagger must beat the yardstick by
# Shares of the classifier's ranking in the tagger's intent guess scored beside the config's (0: the
# tagger's own intent head alone).
CLASSIFIER_VARIANTS = {
    "head_alone": {"classifier_weight": 0.0},
    "linear_0.5": {"classifier_weight": 0.5},
    "linear_0.7": {"classifier_weight": 0.7},
    "classifier_alone": {"classifier_weight": 1.0},
    "product_0.5": {"classifier_weight": 0.5, "classifier_mix": "product"},
    "product_0.7": {"classifier_weight": 0.7, "classifier_mix": "product"},
}
Span = tuple[str, int, int]


def load_examples(path: Path) -> list[tuple[str, AnnotatedText]]:
    """Return (intent, annotated text) pairs from an MTOP ``train.entities.json``."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [
        (
            item["intent"],
            AnnotatedText(
                item["text"],
                tuple(Annotation(e["entity"], e["start"], e["end"]) for e in item["entities"]),
            ),
        )
        for item in raw["examples"]
    ]


def split_pairs(
    examples: Sequence[tuple[str, AnnotatedText]], share: float = VALIDATION_SHARE, seed: int = SEED
) -> tuple[list[tuple[str, AnnotatedText]], list[tuple[str, AnnotatedText]]]:
    """Split per intent: ``share`` of each (at least one when it has two or more) is held out."""
    rng = np.random.default_rng(seed)
    by_intent: dict[str, list[AnnotatedText]] = defaultdict(list)
    for intent, example in examples:
        by_intent[intent].append(example)
    train, held = [], []
    for intent in sorted(by_intent):
        items = by_intent[intent]
        order = rng.permutation(len(items))
        count = max(1, round(share * len(items))) if len(items) > 1 else 0
        held += [(intent, items[i]) for i in order[:count]]
        train += [(intent, items[i]) for i in order[count:]]
    return train, held


def micro_f1(gold: Sequence[set[Span]], predicted: Sequence[set[Span]]) -> dict[str, float]:
    """Return exact-span micro precision, recall and F1 in percent."""
    true_positives = sum(len(g & p) for g, p in zip(gold, predicted, strict=True))
    predicted_count = sum(map(len, predicted))
    gold_count = sum(map(len, gold))
    precision = true_positives / predicted_count if predicted_count else 0.0
    recall = true_positives / gold_count if gold_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def gold_spans(example: AnnotatedText) -> set[Span]:
    """Return an example's annotations as (entity, start, end)."""
    return {(a.entity, a.start, a.end) for a in example.annotations}


# The CRF yardstick: whitespace tokens, BIO, window features.
def _whitespace_tokens(text: str) -> list[tuple[int, int]]:
    spans, start = [], None
    for index, ch in enumerate(text + " "):
        if ch.isspace():
            if start is not None:
                spans.append((start, index))
                start = None
        elif start is None:
            start = index
    return spans


def _word_features(word: str, prefix: str) -> dict[str, Any]:
    lower = word.lower()
    return {
        f"{prefix}w": lower,
        f"{prefix}p2": lower[:2],
        f"{prefix}p3": lower[:3],
        f"{prefix}s2": lower[-2:],
        f"{prefix}s3": lower[-3:],
        f"{prefix}title": word.istitle(),
        f"{prefix}upper": word.isupper(),
        f"{prefix}digit": word.isdigit(),
    }


def _crf_features(words: list[str]) -> list[dict[str, Any]]:
    rows = []
    for index in range(len(words)):
        features: dict[str, Any] = {"bias": 1.0}
        for offset in (-2, -1, 0, 1, 2):
            position = index + offset
            if 0 <= position < len(words):
                features.update(_word_features(words[position], f"{offset}:"))
            else:
                features[f"{offset}:edge"] = True
        rows.append(features)
    return rows


def _crf_labels(example: AnnotatedText, spans: list[tuple[int, int]]) -> list[str]:
    labels = ["O"] * len(spans)
    for annotation in example.annotations:
        inside = [i for i, (s, e) in enumerate(spans) if s >= annotation.start and e <= annotation.end]
        for position, index in enumerate(inside):
            labels[index] = f"{'B' if position == 0 else 'I'}-{annotation.entity}"
    return labels


def _spans_from_bio(labels: list[str], spans: list[tuple[int, int]]) -> set[Span]:
    found: list[list[Any]] = []
    for label, (start, end) in zip(labels, spans, strict=True):
        if label.startswith("B-") or (label.startswith("I-") and (not found or found[-1][0] != label[2:])):
            found.append([label[2:], start, end])
        elif label.startswith("I-"):
            found[-1][2] = end
        else:
            found.append(["", 0, 0])  # an O ends the run
    return {(name, start, end) for name, start, end in found if name}


def crf_yardstick(train: Sequence[AnnotatedText], held: Sequence[AnnotatedText]) -> list[set[Span]]:
    """Fit the CRF on train and return its spans on the held-out examples."""
    import pycrfsuite  # dev/bench only: requirements-dev.txt

    trainer = pycrfsuite.Trainer(verbose=False)
    for example in train:
        spans = _whitespace_tokens(example.text)
        words = [example.text[s:e] for s, e in spans]
        trainer.append(_crf_features(words), _crf_labels(example, spans))
    trainer.set_params({"c1": 0.1, "c2": 0.01, "max_iterations": 200, "feature.possible_transitions": True})
    model_path = ROOT / "models" / ".crf_yardstick.crfsuite"
    model_path.parent.mkdir(exist_ok=True)
    trainer.train(str(model_path))
    tagger = pycrfsuite.Tagger()
    tagger.open(str(model_path))
    predicted = []
    for example in held:
        spans = _whitespace_tokens(example.text)
        predicted.append(
            _spans_from_bio(tagger.tag(_crf_features([example.text[s:e] for s, e in spans])), spans)
        )
    tagger.close()
    model_path.unlink(missing_ok=True)
    return predicted


def intent_rankings(
    train_pairs: Sequence[tuple[str, AnnotatedText]], held: Sequence[AnnotatedText], language: str
) -> tuple[list[IntentRanking], dict[str, Any]]:
    """Train the bot's intent classifier on the training split as ``chatbot train`` does; return its
    ranking of each held-out text and how it was trained."""
    from chatbot.classifier.ranker import Ranker
    from chatbot.data.intents import Intent
    from chatbot.training.train import default_config, train

    texts: dict[str, list[str]] = defaultdict(list)
    for intent, example in train_pairs:
        if example.text not in texts[intent]:
            texts[intent].append(example.text)
    intents = [Intent(tag, tuple(patterns), ("-",)) for tag, patterns in sorted(texts.items())]
    config = default_config(intents, language)
    started = time.perf_counter()
    bundle = train(intents, config)
    seconds = time.perf_counter() - started
    rankings = [
        ranking.label_probabilities
        for ranking in Ranker.from_bundle(bundle).rank_batch([e.text for e in held])
    ]
    about = {
        "encoder": config.encoder,
        "encoder_used": bundle.encoder is not None,
        "training_seconds": seconds,
    }
    return rankings, about


def tagger_spans(
    tagger: Tagger, held: Sequence[AnnotatedText], rankings: Sequence[IntentRanking | None]
) -> list[set[Span]]:
    """Return the tagger's spans on the held-out texts, each decoded with its ranking (or none)."""
    return [
        {(e.entity, e.start, e.end) for e in tagger.extract(example.text, intent_ranking=ranking)}
        for example, ranking in zip(held, rankings, strict=True)
    ]


def language_result(
    mtop: Path, language: str, config: TaggerConfig, skip_crf: bool = False
) -> dict[str, Any]:
    """Fit and score both extractors on one language."""
    train_pairs, held_pairs = split_pairs(load_examples(mtop / language / "train.entities.json"))
    held = [example for _, example in held_pairs]
    train = [example for _, example in train_pairs]
    gold = [gold_spans(example) for example in held]
    rankings, classifier = intent_rankings(train_pairs, held, language)
    started = time.perf_counter()
    crf = micro_f1(gold, crf_yardstick(train, held)) if not skip_crf else {"f1": float("nan")}
    crf_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tagger = fit_tagger(train, config, intents=[intent for intent, _ in train_pairs])
    fit_seconds = time.perf_counter() - started
    top1 = [ranking[0][0] == intent for ranking, (intent, _) in zip(rankings, held_pairs, strict=True)]
    classifier["top1"] = 100 * float(np.mean(top1))
    started = time.perf_counter()
    learned = micro_f1(gold, tagger_spans(tagger, held, rankings))
    extract_ms = 1000 * (time.perf_counter() - started) / max(len(held), 1)
    by_variant = {}
    for name, overrides in CLASSIFIER_VARIANTS.items():
        variant = dataclasses.replace(tagger, config=dataclasses.replace(config, **overrides))
        by_variant[name] = micro_f1(gold, tagger_spans(variant, held, rankings))["f1"]
    by_variant["classifier_top1_only"] = micro_f1(
        gold, tagger_spans(tagger, held, [r[:1] for r in rankings])
    )["f1"]
    by_variant["true_intent"] = micro_f1(
        gold, tagger_spans(tagger, held, [((intent, 1.0),) for intent, _ in held_pairs])
    )["f1"]
    return {
        "train": len(train),
        "validation": len(held),
        "entity_types": len(tagger.entities),
        "crf": crf,
        "tagger": learned,
        "classifier_weight": config.classifier_weight,
        "intent_classifier": classifier,
        "tagger_f1_by_intent_guess": by_variant,
        "margin": learned["f1"] - crf["f1"],
        "target_met": learned["f1"] >= crf["f1"] + MARGIN,
        "crf_fit_seconds": crf_seconds,
        "tagger_fit_seconds": fit_seconds,
        "tagger_ms_per_message": extract_ms,
    }


def mtop_entities(
    mtop: Path, languages: Sequence[str] = LANGUAGES, config: TaggerConfig | None = None
) -> dict[str, Any]:
    """Return each language's result (the ``mtop_entities`` section of bench/accuracy.py)."""
    return {language: language_result(mtop, language, config or TaggerConfig()) for language in languages}


def entity_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Return table rows: measure, figure, yardstick, target."""
    return [
        (
            f"MTOP {language} entities, exact-span micro F1 (tagger; {row['validation']} held out)",
            f"{row['tagger']['f1']:.1f}",
            f"CRF {row['crf']['f1']:.1f}",
            f">= {row['crf']['f1'] + MARGIN:.1f} {'met' if row['target_met'] else 'NOT met'}",
        )
        for language, row in results.items()
    ]


def main() -> None:
    """Run the entity section alone and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mtop", type=Path, default=ROOT.parent / "shared" / "datasets" / "mtop")
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--skip-crf", action="store_true", help="tuning runs: the tagger alone")
    parser.add_argument(
        "--config", default="{}", help="JSON overrides of TaggerConfig (tuning on the splits)"
    )
    args = parser.parse_args()
    config = TaggerConfig.from_dict({**TaggerConfig().to_dict(), **json.loads(args.config)})
    for language in args.languages.split(","):
        result = language_result(args.mtop, language, config, args.skip_crf)
        print(language, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
