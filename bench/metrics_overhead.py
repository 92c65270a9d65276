"""Time POST /predict through the Flask test client with and without the Prometheus metrics.

The baseline is the same app with the metrics hooks taken out and the reply counter made a no-op,
so the difference is what the metrics cost per request. ``--multiprocess`` measures the mode used
under gunicorn, where every update goes to a memory-mapped file (PROMETHEUS_MULTIPROC_DIR).
``--rate-limit`` instead compares the default rate limit (60/minute per client, 500 clients
taking turns, none over its limit) with no limit. Rounds alternate between the two apps so the
shared machine's noise hits both alike.

    .venv/bin/python -m bench.metrics_overhead [--model models/chatbot_model.h5] [--multiprocess | --rate-limit]
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
from chatbot.classifier.bundle import Bundle

RESULTS = (
    Path(__file__).resolve().parent / "results"
)  # metrics_overhead_<mode>.json, rate_limit_overhead.json
REQUESTS_PER_ROUND = 2000
CLIENTS = 500  # addresses taking turns: each stays under the default rate limit over a whole run


class NoMetrics:
    """Stands in for app.metrics.Metrics in the baseline: counts nothing."""

    def observe_replies(self, replies: Iterable[object]) -> None:
        """Ignore the replies."""


def build_apps(model_path: Path) -> dict[str, object]:
    """Return test clients of the app with metrics and of the same app without them."""
    from app import create_app

    config = {"TESTING": True, "MODEL_PATH": str(model_path), "RATE_LIMIT": None}
    with_metrics = create_app(config)
    without = create_app(config, dialogue=with_metrics.extensions["chatbot"].dialogue)
    for hooks in (without.before_request_funcs, without.after_request_funcs):
        hooks[None] = [hook for hook in hooks.get(None, []) if hook.__module__ != "app.metrics"]
    without.extensions["metrics"] = NoMetrics()
    return {"with": with_metrics.test_client(), "without": without.test_client()}


def build_rate_limit_apps(model_path: Path) -> dict[str, object]:
    """Return test clients of the app with the default rate limit and of the same app without one."""
    from app import create_app
    from app.config import DEFAULT_RATE_LIMIT

    config = {"TESTING": True, "MODEL_PATH": str(model_path)}
    limited = create_app({**config, "RATE_LIMIT": DEFAULT_RATE_LIMIT})
    unlimited = create_app({**config, "RATE_LIMIT": None}, dialogue=limited.extensions["chatbot"].dialogue)
    return {"with": limited.test_client(), "without": unlimited.test_client()}


def time_requests(client: object, texts: list[str], count: int) -> float:
    """Return the median seconds per /predict request, cycling through the texts."""
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        address = f"10.0.{index % CLIENTS // 250}.{index % 250}"
        response = client.post(
            "/predict", json={"data": texts[index % len(texts)]}, environ_base={"REMOTE_ADDR": address}
        )
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(latencies)


def run(model_path: Path, rounds: int, rate_limit: bool = False) -> dict:
    """Measure both apps in alternating rounds and return the figures."""
    bundle = Bundle.load(model_path)
    texts = [pattern for intent in bundle.intents for pattern in intent.patterns]
    clients = (build_rate_limit_apps if rate_limit else build_apps)(model_path)
    for client in clients.values():
        time_requests(client, texts, 200)  # warm up
    per_round: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            per_round[name].append(time_requests(clients[name], texts, REQUESTS_PER_ROUND) * 1e6)
    medians = {name: statistics.median(values) for name, values in per_round.items()}
    overhead = medians["with"] - medians["without"]
    return {
        "model": str(model_path),
        "feature": "rate limit" if rate_limit else "metrics",
        "mode": "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single process",
        "requests_per_round": REQUESTS_PER_ROUND,
        "rounds_us": per_round,
        "median_us": medians,
        "overhead_us": overhead,
        "overhead_share": overhead / medians["without"],
        "machine": describe_machine(),
    }


def main() -> None:
    """Parse arguments, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/chatbot_model.h5"))
    parser.add_argument("--rounds", type=int, default=5)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--multiprocess", action="store_true", help="metrics in files, as under gunicorn")
    mode.add_argument("--rate-limit", action="store_true", help="the default rate limit instead of metrics")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chatbot-metrics-") as directory:
        if args.multiprocess:  # before the app, and so prometheus_client, is imported
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        results = run(args.model, args.rounds, args.rate_limit)
    medians = results["median_us"]
    feature = results["feature"]
    print(
        f"/predict ({results['mode']}): {medians['without']:.0f} us without {feature}, "
        f"{medians['with']:.0f} us with: +{results['overhead_us']:.0f} us ({results['overhead_share']:.1%})"
    )
    name = (
        "rate_limit_overhead"
        if args.rate_limit
        else f"metrics_overhead_{'multiprocess' if args.multiprocess else 'single'}"
    )
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
