"""Measure what the conversation log costs: POST /predict req/s with CHATBOT_LOG=on against off.

Both servers are our app under the same gunicorn settings, rate limiter off, loaded by wrk with a
never-repeating message per request (bench/wrk_varied.lua). "on" writes to a fresh SQLite file (the
default) or, with --database-url, to that database. Rounds are short and alternate which goes
first, so the two runs of a round see about the same load on a shared machine; the median of the
per-round on/off ratios is printed beside the target (log on within 10% of off) and the rounds go
to bench/results/convlog_overhead.json. On a machine shared with other jobs req/s swings by 2x
between runs, so the CPU time the server's processes spend per request (its writer thread
included, read from /proc after the last batch is flushed) is printed too: at saturation req/s is
inversely proportional to it, and other jobs barely change it. ``--in-process`` measures the CPU
time of each part alone with the Flask test client: the request thread with the log on and off,
and the writer's time per row when it then writes those rows, each read with time.thread_time().

    .venv/bin/python -m bench.convlog_overhead [--model PATH] [--rounds 3] [--duration 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.throughput import (
    OURS,
    REPO,
    machine_info,
    run_wrk,
    start_server,
    wait_first_200,
    write_words,
)
from chatbot.classifier.bundle import Bundle
from tests.harness import cpu_seconds, process_tree

RESULTS_PATH = REPO / "bench" / "results" / "convlog_overhead.json"
TARGET_SHARE = 0.10  # the log may cost at most 10% of the req/s
FLUSH_WAIT = 1.0  # seconds: twice the writer's flush interval


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line (the wrk and gunicorn options match bench/throughput.py's)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "chatbot_model.h5")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk load per server and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", help="log to this database instead of a fresh SQLite file")
    parser.add_argument("--in-process", action="store_true", help="thread CPU time per part, no gunicorn")
    return parser.parse_args(argv)


def bench_once(args: argparse.Namespace, wrk: str, log_dir: Path, tag: str, log_on: bool) -> dict[str, Any]:
    """Start one server with the log on or off, load it with varied messages, and stop it."""
    database = log_dir / f"{tag}.sqlite3"
    env = {
        "CHATBOT_LOG": "on" if log_on else "off",
        "CHATBOT_DATABASE_URL": args.database_url or f"sqlite:///{database}",
    }
    server = start_server(OURS, args, log_dir, tag, env)
    url = f"{server.url}/predict"
    try:
        wait_first_200(server)
        run_wrk(wrk, url, args, args.warmup, "varied", log_dir / "words.txt")
        time.sleep(FLUSH_WAIT)
        cpu_before = cpu_seconds(process_tree(server.pid))
        load = run_wrk(wrk, url, args, args.duration, "varied", log_dir / "words.txt")
        time.sleep(FLUSH_WAIT)  # the writer's last batch of this load belongs to it
        cpu = cpu_seconds(process_tree(server.pid)) - cpu_before
    finally:
        server.stop()
    logged = None
    if log_on and not args.database_url:
        with sqlite3.connect(database) as connection:
            logged = connection.execute("SELECT count(*) FROM chatbot_messages").fetchone()[0]
    return {
        "requests_per_s": load["requests_per_s"],
        "cpu_us_per_request": round(cpu / load["requests"] * 1e6, 1),
        "errors": load["errors_total"],
        "rows_logged": logged,
    }


def measure_in_process(args: argparse.Namespace, requests_per_round: int = 500) -> dict[str, Any]:
    """Return the request thread's CPU per request (log on, off) and the writer's CPU per row."""
    from app import create_app

    rng = random.Random(0)
    words = sorted(
        {word for intent in Bundle.load(args.model).intents for p in intent.patterns for word in p.split()}
    )
    texts = [" ".join(rng.choices(words, k=5)) for _ in range(requests_per_round)]
    base = {"TESTING": True, "MODEL_PATH": str(args.model), "RATE_LIMIT": None}
    off = create_app({**base, "CONVERSATION_LOG": False})
    with tempfile.TemporaryDirectory(prefix="bench-convlog-") as directory:
        database = args.database_url or f"sqlite:///{directory}/log.sqlite3"
        on = create_app(
            {**base, "CONVERSATION_LOG": True, "DATABASE_URL": database},
            dialogue=off.extensions["chatbot"].dialogue,
        )
        log = on.extensions["conversation_log"]
        log._owner_pid = os.getpid()  # no writer thread: the rows wait, and are written below alone
        clients = {"off": off.test_client(), "on": on.test_client()}
        per_round: dict[str, list[float]] = {"off": [], "on": []}
        writer_seconds, rows = 0.0, 0
        for number in range(args.rounds):
            for name in ("off", "on") if number % 2 else ("on", "off"):
                started = time.thread_time()
                for text in texts:
                    clients[name].post("/predict", json={"data": f"{text} {number}"})
                per_round[name].append((time.thread_time() - started) / len(texts) * 1e6)
            # Drain the buffer as the writer does every half second (~500 rows at full load): a buffer left to grow would
            # make every garbage collection walk it, and bill that to the request thread. Each
            # drain opens the database again, so the writer's figure errs on the high side.
            rows += len(log.buffer)
            log._stopping.set()
            started = time.thread_time()
            log._run()
            writer_seconds += time.thread_time() - started
            log._stopping.clear()
        writer_us = writer_seconds / rows * 1e6
    request_us = {name: statistics.median(values) for name, values in per_round.items()}
    total_on = request_us["on"] + writer_us
    return {
        "request_thread_us": request_us,
        "writer_us_per_row": writer_us,
        "off_over_on": request_us["off"] / total_on,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print the medians beside the target and write the JSON report."""
    args = parse_args(argv)
    if args.in_process:
        figures = measure_in_process(args)
        request_us = figures["request_thread_us"]
        print(
            f"in-process CPU: request thread {request_us['off']:.0f} us log off, {request_us['on']:.0f} us log on, "
            f"+ writer {figures['writer_us_per_row']:.1f} us a row: req/s x{figures['off_over_on']:.3f} "
            f"(target >= {1 - TARGET_SHARE:.2f})"
        )
        return 0
    wrk = shutil.which("wrk") or sys.exit("needs wrk: apt-get install -y wrk")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-convlog-"))
    write_words(args.model, log_dir / "words.txt")
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(1, args.rounds + 1):
            order = (False, True) if number % 2 else (True, False)
            result = {}
            for log_on in order:
                name = "on" if log_on else "off"
                result[name] = bench_once(args, wrk, log_dir, f"r{number}-{name}", log_on)
                print(f"round {number} log {name}: {result[name]}", file=sys.stderr, flush=True)
            rounds.append(result)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    medians = {
        name: statistics.median(one[name]["requests_per_s"] for one in rounds) for name in ("off", "on")
    }
    ratio = statistics.median(one["on"]["requests_per_s"] / one["off"]["requests_per_s"] for one in rounds)
    cpu = {
        name: statistics.median(one[name]["cpu_us_per_request"] for one in rounds) for name in ("off", "on")
    }
    report = {
        "settings": {key: str(value) for key, value in vars(args).items()},
        "machine": machine_info(wrk),
        "rounds": rounds,
        "median_requests_per_s": medians,
        "on_over_off": round(ratio, 3),
        "median_cpu_us_per_request": cpu,
        "cpu_off_over_on": round(cpu["off"] / cpu["on"], 3),
        "target": f">= {1 - TARGET_SHARE:.2f}",
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n")
    target = 1 - TARGET_SHARE
    print(
        f"/predict, varied messages: {medians['off']:.0f} req/s log off, {medians['on']:.0f} req/s log on: "
        f"median on/off ratio of {len(rounds)} paired rounds {ratio:.3f} (target >= {target:.2f}, "
        f"{'meets' if ratio >= target else 'MISSES'})\n"
        f"server CPU per request: {cpu['off']:.0f} us log off, {cpu['on']:.0f} us log on: req/s at saturation "
        f"x{cpu['off'] / cpu['on']:.3f} (target >= {target:.2f}, {'meets' if cpu['off'] / cpu['on'] >= target else 'MISSES'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
