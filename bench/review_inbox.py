"""Measure the review inbox at scale: 50,000 distinct messages in the log, on real gunicorn.

Targets (issue 21): the inbox opens in <= 2 s, Apply (a decision on a group) takes <= 0.5 s, and the
worker's other connections (/healthz, polled every 20 ms meanwhile) answer within 100 ms. Also
measured: what naming the groups costs the writer per stored message, and the old inbox (the greedy
all-pairs grouping of /work/main, or any checkout given with --old) on the same log's newest 2,000
messages, side by side in this run. The figures go to bench/results/reliability/review_inbox.json
(``make reliability-report`` puts them into docs/reliability.md)::

    python -m bench.review_inbox [--messages 50000] [--old /work/main]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from chatbot.learning.message_log import ConversationStore, utc_now
from tests.harness import Gunicorn

REPO = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO / "bench" / "results" / "reliability" / "review_inbox.json"
TOKEN = "bench-review-token-0123456789"
OPEN_TARGET_S, APPLY_TARGET_S, HEALTHZ_TARGET_S = 2.0, 0.5, 0.1
OLD_SAMPLE = 2000  # messages the old inbox groups in the side-by-side run (it took 14.6 s on main)
EXPIRED = 300_000  # messages past retention that the writer's first sweep deletes while /healthz is polled


def distinct_messages(count: int, seed: int = 21) -> list[str]:
    """Return ``count`` made-up messages, each unlike the others: words of random letters."""
    generator = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(generator.choices(alphabet, k=generator.randint(3, 9))) for _ in range(20_000)]
    return [" ".join(generator.choices(words, k=generator.randint(4, 9))) for _ in range(count)]


def fill_log(url: str, texts: list[str]) -> float:
    """Store the messages as the writer does (batches of 500); return the seconds per message."""
    store = ConversationStore(url)
    store.migrate()
    started = time.perf_counter()
    for start in range(0, len(texts), 500):
        now = utc_now()
        store.insert(
            [
                {
                    "created_at": now - dt.timedelta(seconds=len(texts) - start - offset),
                    "endpoint": "/api/v1/parse",
                    "session_id": None,
                    "text": text,
                    "intent": "order",
                    "confidence": 0.3,
                    "ranking": '[["order", 0.3]]',
                    "fallback": True,
                    "answer_intent": "fallback",
                    "model": "bench",
                    "latency_ms": 1.0,
                }
                for offset, text in enumerate(texts[start : start + 500])
            ]
        )
    seconds = (time.perf_counter() - started) / len(texts)
    store.close()
    return seconds


def add_expired(path: Path, count: int) -> None:
    """Add messages past retention straight into the SQLite file (already grouped: naming is not measured)."""
    created = (utc_now() - dt.timedelta(days=90)).isoformat(sep=" ")
    row = (created, "/predict", None, "expired", "order", 0.3, "[]", 1, "fallback", "bench", 1.0, 0)
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO chatbot_messages (created_at, endpoint, session_id, text, intent, confidence, "
            "ranking, fallback, answer_intent, model, latency_ms, group_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (row for _ in range(count)),
        )


def old_inbox_seconds(checkout: Path, url: str) -> float:
    """Time the old checkout's inbox over the log, in a process of its own (its code, same machine)."""
    script = (
        "import time, sys\n"
        "from chatbot.learning import review\n"
        "from chatbot.learning.message_log import ConversationStore\n"
        f"review.MAX_MESSAGES = {OLD_SAMPLE}\n"
        "store = ConversationStore(sys.argv[1])\n"
        "started = time.perf_counter(); review.inbox(store); print(time.perf_counter() - started)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, env=environment, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


class HealthzProbe(threading.Thread):
    """Ask /healthz every 20 ms until stopped; keep how long each answer took."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.delays: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with requests.Session() as session:
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    session.get(f"{self.url}/healthz", timeout=10).raise_for_status()
                    self.delays.append(time.perf_counter() - started)
                except requests.RequestException:
                    self.delays.append(10.0)
                self.stopping.wait(0.02)


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Fill a log, serve it with one gevent worker, and time opening the inbox and Apply."""
    url = f"sqlite:///{folder / 'log.sqlite3'}"
    texts = distinct_messages(args.messages)
    write_seconds = fill_log(url, texts)
    add_expired(folder / "log.sqlite3", EXPIRED)
    old_url = f"sqlite:///{folder / 'old.sqlite3'}"
    fill_log(old_url, texts[-OLD_SAMPLE:])
    intents = folder / "intents.json"
    shutil.copy(args.data, intents)
    server = Gunicorn(
        args.model,
        {
            "CHATBOT_LOG": "on",
            "CHATBOT_DATABASE_URL": url,
            "CHATBOT_ADMIN_TOKEN": TOKEN,
            "CHATBOT_DATA": str(intents),
            "CHATBOT_LOG_RETENTION_DAYS": "30",
        },
        workers=1,
        log_path=folder / "gunicorn.log",
    ).start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    idle = HealthzProbe(server.url)  # the same probe with nothing else to do: the machine's noise
    idle.start()
    time.sleep(5)
    idle.stopping.set()
    idle.join()
    store = ConversationStore(url)
    sweep = HealthzProbe(server.url)
    sweep.start()
    started = time.perf_counter()
    requests.post(f"{server.url}/predict", json={"data": "hello"}, timeout=10)  # starts the writer: it sweeps
    while store.count() > len(texts) + 1 and time.perf_counter() - started < 120:
        time.sleep(0.05)
    sweep_seconds = time.perf_counter() - started
    sweep.stopping.set()
    sweep.join()
    store.close()
    probe = HealthzProbe(server.url)
    try:
        probe.start()
        opens, applies = [], []
        for _ in range(3):
            seconds, response = timed(
                lambda: requests.get(f"{server.url}/admin/review/inbox", headers=headers, timeout=60)
            )
            response.raise_for_status()
            opens.append(seconds)
            group_id = response.json()["groups"][0]["id"]
            seconds, decided = timed(
                lambda group_id=group_id: requests.post(
                    f"{server.url}/admin/review/groups/{group_id}",
                    json={"action": "out_of_scope"},
                    headers=headers,
                    timeout=60,
                )
            )
            decided.raise_for_status()
            applies.append(seconds)
        total = response.json()["total"]
    finally:
        probe.stopping.set()
        probe.join()
        server.stop()
    old = old_inbox_seconds(args.old, old_url) if args.old else None
    new_small = timed(lambda: _inbox_here(old_url))[0]
    return {
        "messages": args.messages,
        "load_average": round(os.getloadavg()[0], 1),  # other jobs on the machine, at the end of the run
        "groups": total,
        "open_median_s": round(statistics.median(opens), 3),
        "apply_median_s": round(statistics.median(applies), 3),
        "healthz_max_ms": round(1000 * max(probe.delays), 1),
        "healthz_median_ms": round(1000 * statistics.median(probe.delays), 1),
        "healthz_probes": len(probe.delays),
        "healthz_idle_max_ms": round(1000 * max(idle.delays), 1),
        "healthz_idle_median_ms": round(1000 * statistics.median(idle.delays), 1),
        "write_us_per_message": round(write_seconds * 1e6, 1),
        "expired": EXPIRED,
        "sweep_s": round(sweep_seconds, 2),
        "sweep_healthz_max_ms": round(1000 * max(sweep.delays), 1),
        "old_sample": OLD_SAMPLE,
        "old_inbox_s": round(old, 3) if old is not None else None,
        "new_inbox_same_sample_s": round(new_small, 3),
    }


def _inbox_here(url: str) -> None:
    from chatbot.learning import review

    store = ConversationStore(url)
    review.inbox(store)
    store.close()


def main(argv: list[str] | None = None) -> int:
    """Run the measurement, print the figures beside their targets and write them to JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained bundle to serve")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "intents.json")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--old", type=Path, default=None, help="an older checkout to time beside this one")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-review-") as folder:
        figures = measure(args, Path(folder))
    figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    RESULTS_PATH.write_text(json.dumps(figures, indent=2) + "\n")
    print("| figure | measured | target |\n|---|---:|---:|")
    print(
        f"| inbox of {figures['groups']:,} groups opens (s, median of 3) | {figures['open_median_s']} | <= {OPEN_TARGET_S} |"
    )
    print(f"| Apply (s, median of 3) | {figures['apply_median_s']} | <= {APPLY_TARGET_S} |")
    print(
        f"| /healthz meanwhile, slowest / median (ms) | {figures['healthz_max_ms']} / "
        f"{figures['healthz_median_ms']} | <= {HEALTHZ_TARGET_S * 1000:.0f} |"
    )
    print(
        f"| /healthz with the worker idle, slowest / median (ms) | {figures['healthz_idle_max_ms']} / "
        f"{figures['healthz_idle_median_ms']} | |"
    )
    print(
        f"| /healthz while {figures['expired']:,} expired messages are deleted ({figures['sweep_s']} s), "
        f"slowest (ms) | {figures['sweep_healthz_max_ms']} | <= {HEALTHZ_TARGET_S * 1000:.0f} |"
    )
    print(f"| naming groups when storing (us/message) | {figures['write_us_per_message']} | |")
    if figures["old_inbox_s"] is not None:
        print(
            f"| {OLD_SAMPLE:,} messages: old inbox / new inbox (s) | "
            f"{figures['old_inbox_s']} / {figures['new_inbox_same_sample_s']} | |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
