"""Time POST /predict through the Flask test client with and without the Prometheus metrics.

The baseline is the same app with the metrics hooks taken out and the reply counter made a no-op,
so the difference is what the metrics cost per request. ``--multiprocess`` measures the mode used
under gunicorn, where every update goes to a memory-mapped file (PROMETHEUS_MULTIPROC_DIR).
Rounds alternate between the two apps so the shared machine's noise hits both alike.

    .venv/bin/python -m bench.metrics_overhead [--model models/chatbot_model.h5] [--multiprocess]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench.machine import describe_machine
from chatbot.bundle import Bundle

RESULTS = Path(__file__).resolve().parent / "results"  # metrics_overhead_<mode>.json
REQUESTS_PER_ROUND = 2000


class NoMetrics:
    """Stands in for app.metrics.Metrics in the baseline: counts nothing."""

    def observe_replies(self, replies: Iterable[object]) -> None:
        """Ignore the replies."""


def build_apps(model_path: Path) -> dict[str, object]:
    """Return test clients of the app with metrics and of the same app without them."""
    from app import create_app

    config = {"TESTING": True, "MODEL_PATH": str(model_path), "RATE_LIMIT": None}  # one client, flat out
    with_metrics = create_app(config)
    without = create_app(config, dialogue=with_metrics.extensions["chatbot"].dialogue)
    for hooks in (without.before_request_funcs, without.after_request_funcs):
        hooks[None] = [hook for hook in hooks.get(None, []) if hook.__module__ != "app.metrics"]
    without.extensions["metrics"] = NoMetrics()
    return {"with metrics": with_metrics.test_client(), "without metrics": without.test_client()}


def time_requests(client: object, texts: list[str], count: int) -> float:
    """Return the median seconds per /predict request, cycling through the texts."""
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        response = client.post("/predict", json={"data": texts[index % len(texts)]})
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(latencies)


def run(model_path: Path, rounds: int) -> dict:
    """Measure both apps in alternating rounds and return the figures."""
    bundle = Bundle.load(model_path)
    texts = [pattern for intent in bundle.intents for pattern in intent.patterns]
    clients = build_apps(model_path)
    for client in clients.values():
        time_requests(client, texts, 200)  # warm up
    per_round: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            per_round[name].append(time_requests(clients[name], texts, REQUESTS_PER_ROUND) * 1e6)
    medians = {name: statistics.median(values) for name, values in per_round.items()}
    overhead = medians["with metrics"] - medians["without metrics"]
    return {
        "model": str(model_path),
        "mode": "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single process",
        "requests_per_round": REQUESTS_PER_ROUND,
        "rounds_us": per_round,
        "median_us": medians,
        "overhead_us": overhead,
        "overhead_share": overhead / medians["without metrics"],
        "machine": describe_machine(),
    }


def main() -> None:
    """Parse arguments, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/chatbot_model.h5"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--multiprocess", action="store_true", help="metrics in files, as under gunicorn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatbot-metrics-") as directory:
        if args.multiprocess:  # before the app, and so prometheus_client, is imported
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        results = run(args.model, args.rounds)
    medians = results["median_us"]
    print(
        f"/predict ({results['mode']}): {medians['without metrics']:.0f} us without metrics, "
        f"{medians['with metrics']:.0f} us with: +{results['overhead_us']:.0f} us "
        f"({results['overhead_share']:.1%})"
    )
    path = RESULTS / f"metrics_overhead_{'multiprocess' if args.multiprocess else 'single'}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
