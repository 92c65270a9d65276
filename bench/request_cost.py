"""Where a ``/predict`` request's time goes: CPU per request in-process, layer by layer.

The HTTP benchmark (bench/throughput.py) says how far the app is from a hello-world Flask app; this
one says why. It calls each app's WSGI callable directly (no HTTP, no gunicorn, and not Flask's test
client, whose request building alone costs twice hello's answer: 0.118 vs 0.039 ms) with messages that
never repeat and times the process's CPU (every thread: the conversation log's writer included):

- hello: bench/hello_app.py, the stack's floor;
- web layer: our app with a constant ranking in place of the model (Flask, the JSON body, the
  fallback rule, metrics, security headers, the conversation log);
- the same without the conversation log (``CHATBOT_LOG=off``);
- ours: everything on by default except the rate limiter, as bench/throughput.py serves it.

Each figure is the fastest of interleaved rounds: on a shared machine the slow rounds measure the
neighbours. ::

    .venv/bin/python -m bench.request_cost --model models/chatbot_model.h5 [--model models/clinc150.h5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.hello_app import create_app as create_hello_app
from bench.throughput import pattern_words
from chatbot.classifier.bundle import Bundle

RESULTS = Path(__file__).resolve().parent / "results" / "request_cost.json"
CALLS = 2000
ROUNDS = 5
WRITE_SECONDS = 0.3  # the writer's last batch, taken from the buffer but still being written

WsgiApp = Callable[..., Any]


def post_predict(app: WsgiApp, body: bytes) -> None:
    """Send one ``POST /predict`` straight to a WSGI app, as the original clients send it."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/predict",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }
    statuses: list[str] = []
    result = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(result)
    getattr(result, "close", lambda: None)()
    if not statuses[0].startswith("200"):
        raise RuntimeError(f"/predict answered {statuses[0]}")


def bodies(words: list[str], start: int) -> list[bytes]:
    """Return request bodies that never repeat: a number unique to each spelt in the bot's words
    (its digits in base ``len(words)``, as bench/wrk_varied.lua does), then 0 to 4 more words."""
    messages = []
    for number in range(start, start + CALLS):
        spelt, rest = [], number
        while rest or len(spelt) < 3:
            spelt.append(words[rest % len(words)])
            rest //= len(words)
        extra = [words[(number * 7 + k) % len(words)] for k in range(number % 5)]
        messages.append(json.dumps({"data": " ".join(spelt + extra)}).encode())
    return messages


def ms_per_request(app: WsgiApp, words: list[str], start: int) -> float:
    """Return the CPU milliseconds per request over CALLS never-repeating messages."""
    requests = bodies(words, start)
    started = time.process_time()
    for body in requests:
        post_predict(app, body)
    wait_for_the_log(app)  # the writer's CPU counts: it is work done for these requests
    return (time.process_time() - started) / CALLS * 1000


def wait_for_the_log(app: WsgiApp) -> None:
    """Wait until an app's conversation log has written what its requests queued (sleeping costs
    no CPU, and the other apps' writers are idle by then)."""
    log = getattr(app, "extensions", {}).get("conversation_log")
    while log is not None and log.buffer:
        time.sleep(0.05)
    time.sleep(WRITE_SECONDS if log is not None else 0.0)


def build_apps(model: Path) -> dict[str, WsgiApp]:
    """Build the apps to compare, in one process (each with its own settings)."""
    from app import create_app

    os.environ.update(CHATBOT_MODEL=str(model), CHATBOT_RATE_LIMIT="off")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))
    ours = create_app()
    web_layer = create_app()
    ranker = web_layer.extensions["chatbot"].dialogue.ranker
    constant = ranker.rank("hello")
    ranker.rank = lambda text: constant
    without_log = create_app({"CONVERSATION_LOG": False})
    ranker = without_log.extensions["chatbot"].dialogue.ranker
    ranker.rank = lambda text: constant
    return {
        "hello": create_hello_app(),
        "web layer, constant ranking": web_layer,
        "web layer, conversation log off": without_log,
        "ours": ours,
    }


def measure(model: Path) -> dict[str, float]:
    """Return the fastest round of each app, rounds interleaved."""
    bundle = Bundle.load(model)
    words = pattern_words(bundle)
    apps = build_apps(model)
    rounds: dict[str, list[float]] = {name: [] for name in apps}
    for number in range(ROUNDS):
        for name, app in apps.items():
            rounds[name].append(ms_per_request(app, words, number * CALLS))
    return {name: round(min(times), 4) for name, times in rounds.items()}


def main(argv: list[str] | None = None) -> int:
    """Measure each model and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="a trained bundle")
    args = parser.parse_args(argv)
    report = {str(model): measure(model) for model in args.model}
    print("| bot | " + " | ".join(next(iter(report.values()))) + " |")
    print("|---|" + "---:|" * len(next(iter(report.values()))))
    for model, figures in report.items():
        print(f"| {Path(model).name} | " + " | ".join(f"{ms:.3f} ms" for ms in figures.values()) + " |")
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nCPU per request in-process, fastest of {ROUNDS} interleaved rounds; raw: {RESULTS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
