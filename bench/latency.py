"""Time the whole in-process predict path with three forward passes on the same model.

Each path runs the same code (tokenise, the sentence encoder, classify, choose the answer); only the
forward pass differs: ours in numpy, Keras ``model.predict`` (the original design) and Keras under
``tf.function``. Messages never repeat (bench/messages.py: the bot's words recombined, 3 to 7 of
them) and the ranking cache is off, so every call runs the whole path. The encoder's piece cache is
warmed with the bot's phrases, as a server does at load. Rounds are interleaved so that the shared
machine's noise hits every path alike. The first bot's numpy median is printed beside issue 20's
target (the default bot's: make bench names it first).

    .venv/bin/python -m bench.latency [--model models/chatbot_model.h5]... [--rounds 3] [--numpy-only]
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
from bench.messages import pattern_words, take
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.dialogue.decision import Dialogue

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"
DEFAULT_MODEL = Path("models/chatbot_model.h5")
CALLS = {"numpy (ours)": 3000, "keras tf.function": 1000, "keras model.predict": 150}
WARMUP_CALLS = 50
TARGET_MS = 1.0  # issue 20: the default bot, per message, median, never-repeating messages


def build_paths(bundle: Bundle, numpy_only: bool = False) -> dict[str, Callable[[str], object]]:
    """Return the three predict paths, each a dialogue over its own forward pass."""
    threshold = bundle.config.threshold
    if bundle.architecture is None or numpy_only:  # the n-gram model alone: no Keras forward pass
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


def time_calls(reply: Callable[[str], object], texts: list[str]) -> list[float]:
    """Return the seconds each call took, one call per text."""
    latencies = []
    for text in texts:
        started = time.perf_counter()
        reply(text)
        latencies.append(time.perf_counter() - started)
    return latencies


def percentile(values: list[float], share: float) -> float:
    """Return the value below which ``share`` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(model_path: Path, rounds: int, numpy_only: bool = False) -> dict:
    """Measure every path in interleaved rounds and return the figures."""
    bundle = Bundle.load(model_path)
    phrases = [pattern for intent in bundle.intents for pattern in intent.patterns]
    words = pattern_words(bundle)
    paths = build_paths(bundle, numpy_only)
    if bundle.encoder is not None:  # as app/bot.py warms it in the master
        from chatbot.classifier.encoder import shared_encoder

        shared_encoder().warm_up(phrases)
    next_message = 0

    def messages(count: int) -> list[str]:
        nonlocal next_message
        next_message += count
        return take(words, next_message - count, count)

    for reply in paths.values():  # warm up: tf.function tracing, the stemmer's cache
        time_calls(reply, messages(WARMUP_CALLS))
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    names = list(paths)
    for round_index in range(rounds):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            latencies = time_calls(paths[name], messages(CALLS[name]))
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
        "messages": "never-repeating, bench/messages.py",
        "encoder": bundle.encoder is not None,
        "calls_per_round": CALLS,
        "rounds": per_round,
        "medians": medians,
        "machine": describe_machine(),
        "load_average": os.getloadavg(),
    }


def print_table(results: dict, with_target: bool) -> None:
    """Print the medians as a markdown table, and ours beside the target."""
    encoder = "with the encoder" if results["encoder"] else "without the encoder"
    print(f"\n{results['model']} ({encoder}; load average {results['load_average'][0]:.2f})")
    print("| predict path | p50 | p99 | p50 / ours |")
    print("|---|---|---|---|")
    for name, figures in results["medians"].items():
        print(
            f"| {name} | {figures['p50_us'] / 1000:.3f} ms | {figures['p99_us'] / 1000:.3f} ms "
            f"| {figures['p50_ratio_to_ours']:.0f}x |"
        )
    ours = results["medians"]["numpy (ours)"]["p50_us"] / 1000
    met = "met" if ours <= TARGET_MS else "NOT met"
    target = f" (target <= {TARGET_MS} ms: {met})" if with_target else ""
    print(f"per message, median, never-repeating: {ours:.3f} ms{target}")


def main() -> None:
    """Parse arguments, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="a trained bundle (repeat for several)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--numpy-only", action="store_true", help="leave out the Keras paths")
    args = parser.parse_args()
    results = [run(model, args.rounds, args.numpy_only) for model in args.model or [DEFAULT_MODEL]]
    for index, result in enumerate(results):
        print_table(result, with_target=index == 0)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
