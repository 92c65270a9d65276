"""Time one answer in-process with a bundle's model, beside the model the project served before.

The model before this design was the LSTM alone: one small LSTM for small bots, four
bidirectional LSTMs averaged for large ones. Its cost does not depend on its weights, so a twin
with the same shapes (same vocabulary and labels, untrained weights) stands in for it. Messages
never repeat (each gets a number of its own) and the ranking cache is off, so every call runs the
whole path: tokenise, correct typos, both models, the fallback rule. Rounds are interleaved.

    .venv/bin/python -m bench.model_cost --model models/chatbot_model.h5 [--model models/clinc150.h5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.machine import describe_machine
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.config import LARGE_DATASET, ModelConfig
from chatbot.classifier.ranker import Ranker
from chatbot.dialogue.decision import Dialogue

RESULTS = Path(__file__).resolve().parent / "results" / "model_cost.json"
CALLS = 2000
ROUNDS = 3


def previous_design(bundle: Bundle) -> Bundle:
    """Return a bundle shaped like the LSTM-only model the project served before, for this bot."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from chatbot.classifier.model import average_models, build_model
    from chatbot.training.fit import extract_weights, json_architecture

    patterns = sum(len(intent.patterns) for intent in bundle.intents)
    config = ModelConfig.for_dataset(patterns).replace(max_length=bundle.config.max_length)
    members = 4 if patterns >= LARGE_DATASET else 1  # the presets before the n-gram model
    models = [build_model(len(bundle.vocabulary), len(bundle.labels), config) for _ in range(members)]
    model = average_models(models) if members > 1 else models[0]
    return Bundle(
        architecture=json_architecture(model),
        weights=extract_weights(model),
        vocabulary=bundle.vocabulary,
        labels=bundle.labels,
        intents=bundle.intents,
        config=config,
        data_sha256=bundle.data_sha256,
    )


def time_replies(dialogue: Dialogue, texts: list[str], start: int) -> list[float]:
    """Return the seconds of each reply to never-repeating messages."""
    latencies = []
    for index in range(CALLS):
        text = f"{texts[index % len(texts)]} {start + index}"
        started = time.perf_counter()
        dialogue.reply(text)
        latencies.append(time.perf_counter() - started)
    return latencies


def run(model_path: Path) -> dict:
    """Measure the bundle and its previous-design twin in interleaved rounds."""
    bundle = Bundle.load(model_path)
    texts = [pattern for intent in bundle.intents for pattern in intent.patterns]
    dialogues = {
        "this design": Dialogue(Ranker.from_bundle(bundle, cache_size=0), bundle.config.threshold),
        "LSTM alone, as before": Dialogue(Ranker.from_bundle(previous_design(bundle), cache_size=0), 0.5),
    }
    medians: dict[str, list[float]] = {name: [] for name in dialogues}
    for round_index in range(ROUNDS):
        for name, dialogue in dialogues.items():
            medians[name].append(statistics.median(time_replies(dialogue, texts, round_index * CALLS)))
    figures = {name: statistics.median(values) * 1e6 for name, values in medians.items()}
    return {
        "model": str(model_path),
        "fingerprint": bundle.fingerprint,
        "intents": len(bundle.labels),
        "patterns": sum(len(intent.patterns) for intent in bundle.intents),
        "lstm": bundle.architecture is not None,
        "median_us": figures,
        "ratio_to_before": figures["this design"] / figures["LSTM alone, as before"],
        "machine": describe_machine(),
    }


def main() -> None:
    """Parse arguments, measure each model, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    args = parser.parse_args()
    results = [run(path) for path in args.model]
    print("| bot | this design, per message | LSTM alone, as before | ratio |")
    print("|---|---|---|---|")
    for result in results:
        now, before = result["median_us"]["this design"], result["median_us"]["LSTM alone, as before"]
        print(
            f"| {result['intents']} intents, {result['patterns']} patterns | {now / 1000:.3f} ms "
            f"| {before / 1000:.3f} ms | {result['ratio_to_before']:.2f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
