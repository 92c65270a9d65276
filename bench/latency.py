"""Time the whole in-process predict path with three forward passes on the same model.

Each path runs the same code (tokenise, encode, classify, choose the answer); only the forward pass
differs: ours in numpy, Keras ``model.predict`` (the original design) and Keras under
``tf.function``. Rounds are interleaved so that the shared machine's noise hits every path alike.

    .venv/bin/python -m bench.latency [--model models/chatbot_model.h5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.machine import describe_machine
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.dialogue.decision import Dialogue

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
CALLS = {"numpy (ours)": 3000, "keras tf.function": 1000, "keras model.predict": 150}


def build_paths(bundle: Bundle) -> dict[str, Callable[[str], object]]:
    """Return the three predict paths, each a dialogue over its own forward pass."""
    threshold = bundle.config.threshold
    if bundle.architecture is None:  # the n-gram model alone: there is no Keras forward pass to compare
        return {"numpy (ours)": Dialogue(Ranker.from_bundle(bundle, cache_size=0), threshold).reply}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from chatbot.classifier.model import load_keras_model

    model = load_keras_model(bundle)
    # No ranking cache: every call runs the whole path, forward pass included.
    engines = {
        "numpy (ours)": Ranker.from_bundle(bundle, cache_size=0),
        "keras tf.function": Ranker.from_bundle(bundle, "keras", cache_size=0),
        "keras model.predict": Ranker(bundle, predict_with(model), cache_size=0),
    }
    return {name: Dialogue(engine, threshold).reply for name, engine in engines.items()}


def predict_with(model) -> Callable[..., object]:
    """Return a forward pass through ``model.predict``: token ids, and sentence vectors if it reads them."""

    def forward(token_ids, sentence_vectors=None):
        inputs = token_ids if len(model.inputs) == 1 else [token_ids, sentence_vectors]
        return model.predict(inputs, verbose=0)

    return forward


def time_calls(reply: Callable[[str], object], texts: list[str], calls: int) -> list[float]:
    """Return the seconds each call took, cycling through the texts."""
    latencies = []
    for index in range(calls):
        text = texts[index % len(texts)]
        started = time.perf_counter()
        reply(text)
        latencies.append(time.perf_counter() - started)
    return latencies


def percentile(values: list[float], share: float) -> float:
    """Return the value below which ``share`` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(model_path: Path, rounds: int) -> dict:
    """Measure every path in interleaved rounds and return the figures."""
    bundle = Bundle.load(model_path)
    texts = [pattern for intent in bundle.intents for pattern in intent.patterns]
    paths = build_paths(bundle)
    for reply in paths.values():  # warm up: caches, tf.function tracing
        time_calls(reply, texts, 50)
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    names = list(paths)
    for round_index in range(rounds):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            latencies = time_calls(paths[name], texts, CALLS[name])
            per_round[name].append(
                {"p50_us": percentile(latencies, 0.5) * 1e6, "p99_us": percentile(latencies, 0.99) * 1e6}
            )
    medians = {
        name: {key: statistics.median(r[key] for r in rounds_) for key in ("p50_us", "p99_us")}
        for name, rounds_ in per_round.items()
    }
    ours = medians["numpy (ours)"]["p50_us"]
    for name in medians:
        medians[name]["p50_ratio_to_ours"] = medians[name]["p50_us"] / ours
    return {
        "model": str(model_path),
        "fingerprint": bundle.fingerprint,
        "texts": len(texts),
        "calls_per_round": CALLS,
        "rounds": per_round,
        "medians": medians,
        "machine": describe_machine(),
    }


def print_table(results: dict) -> None:
    """Print the medians as a markdown table."""
    print("| predict path | p50 | p99 | p50 / ours |")
    print("|---|---|---|---|")
    for name, figures in results["medians"].items():
        print(
            f"| {name} | {figures['p50_us'] / 1000:.3f} ms | {figures['p99_us'] / 1000:.3f} ms "
            f"| {figures['p50_ratio_to_ours']:.0f}x |"
        )


def main() -> None:
    """Parse arguments, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/chatbot_model.h5"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = run(args.model, args.rounds)
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
