"""Benchmark the server under stalled connections: /healthz latency and ordinary traffic's rate.

Run from the repository root::

    .venv/bin/python -m bench.slow_clients [--model PATH] [--stalled 256] [--duration 5] [--workers 1]

It starts gunicorn with the repository's settings (the default ``make run``: 1 worker), measures
ordinary traffic with wrk (never-repeating /predict messages) for ``--duration`` seconds, then opens
``--stalled`` connections that each send part of a request and stall (one byte; headers cut short;
headers and half a body), and measures /healthz and the same traffic again while they are held.
The figures are printed beside their targets and written to bench/results/reliability/slow_clients.json
(``make reliability-report`` puts them into docs/reliability.md).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.throughput import (
    OURS,
    REPO,
    find_wrk,
    run_wrk,
    start_server,
    wait_first_200,
    write_words,
)

RESULTS_PATH = REPO / "bench" / "results" / "reliability" / "slow_clients.json"  # docs/reliability.md
HEALTHZ_TARGET_S = 1.0
RATE_TARGET = 0.5  # ordinary traffic under attack, as a share of its rate without it
# The ways a client can stall part way through a request.
STALLS = (
    b"P",
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 40\r\n\r\n{"data": "hel',
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "chatbot_model.h5")
    parser.add_argument("--stalled", type=int, default=256, help="stalled connections to hold")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk load, before and during")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (the default make run: 1)")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    return parser.parse_args(argv)


def open_stalled(port: int, count: int) -> list[socket.socket]:
    """Open connections that each send part of a request and then say nothing more."""
    stalled = []
    for index in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(STALLS[index % len(STALLS)])
        stalled.append(connection)
    return stalled


def healthz_latencies(port: int, probes: int = 10) -> list[float]:
    """Return the seconds each of a few GET /healthz took (a probe that fails counts as 5 s)."""
    latencies = []
    for _ in range(probes):
        started = time.perf_counter()
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).raise_for_status()
            latencies.append(time.perf_counter() - started)
        except requests.RequestException:
            latencies.append(5.0)
        time.sleep(0.05)
    return latencies


def measure(args: argparse.Namespace, wrk: str, log_dir: Path) -> dict[str, Any]:
    """Start the server, load it without and then with stalled connections, and stop it."""
    words = log_dir / "words.txt"
    write_words(args.model, words)
    server = start_server(OURS, args, log_dir, "slow-clients")
    port, url = server.port, f"{server.url}/predict"
    try:
        wait_first_200(server)
        run_wrk(wrk, url, args, 1, "varied", words)  # warm-up
        normal = run_wrk(wrk, url, args, args.duration, "varied", words)
        stalled = open_stalled(port, args.stalled)
        try:
            time.sleep(0.5)
            healthz = healthz_latencies(port)
            attacked = run_wrk(wrk, url, args, args.duration, "varied", words)
            healthz += healthz_latencies(port)
        finally:
            for connection in stalled:
                connection.close()
    finally:
        server.stop()
    return {
        "workers": args.workers,
        "stalled": args.stalled,
        "normal_requests_per_s": normal["requests_per_s"],
        "attacked_requests_per_s": attacked["requests_per_s"],
        "rate_ratio": round(attacked["requests_per_s"] / normal["requests_per_s"], 3),
        "attacked_errors": attacked["errors_total"],
        "healthz_median_ms": round(1000 * statistics.median(healthz), 1),
        "healthz_max_ms": round(1000 * max(healthz), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement, print the figures beside their targets and write them to JSON."""
    args = parse_args(argv)
    wrk = find_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-slow-") as log_dir:
        figures = measure(args, wrk, Path(log_dir))
    RESULTS_PATH.write_text(json.dumps(figures, indent=2) + "\n")
    print("| figure | measured | target |\n|---|---:|---:|")
    print(
        f"| /healthz, slowest of 20 probes (ms) | {figures['healthz_max_ms']} | <= {HEALTHZ_TARGET_S * 1000:.0f} |"
    )
    print(
        f"| ordinary traffic under {args.stalled} stalled connections / without | "
        f"{figures['rate_ratio']} ({figures['attacked_requests_per_s']:.0f} / "
        f"{figures['normal_requests_per_s']:.0f} req/s) | >= {RATE_TARGET} |"
    )
    ok = figures["healthz_max_ms"] <= HEALTHZ_TARGET_S * 1000 and figures["rate_ratio"] >= RATE_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
