"""What tests share besides fixtures: the tiny bots' data, helpers, and servers with test conveniences.

Fixtures live in tests/conftest.py and build on this module; test files import from here (never
from conftest.py, which pytest imports under another name). Processes come from tests/harness.py.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests

from chatbot.classifier.bundle import CHECKSUM_KEY, METADATA_KEY, Bundle, metadata_checksum
from chatbot.classifier.config import ModelConfig
from chatbot.data.intents import validate_intents
from chatbot.data.slots import validate_domain
from tests import harness
from tests.harness import ROOT

DEFAULT_INTENTS = ROOT / "data" / "intents.json"
# Git-ignored: a test run leaves the tree as it was; `make reliability-report` publishes the figures.
FIGURES_DIR = ROOT / "build" / "reliability"

TINY_INTENTS = {
    "intents": [
        {
            "tag": "greeting",
            "patterns": ["hi", "hello", "hey there", "good morning", "what's up", "hello bot"],
            "responses": ["Hello!", "Hi there."],
        },
        {
            "tag": "goodbye",
            "patterns": ["bye", "goodbye", "see you later", "cya", "have a good day", "talk to you soon"],
            "responses": ["Bye!", "See you."],
        },
        {
            "tag": "order",
            "patterns": ["where is my order", "track my parcel", "order status", "my delivery is late"],
            "responses": ["What is your order number?"],
            "context_set": "order_number",
        },
        {
            "tag": "order_number",
            "patterns": ["it is 12345", "order number 555", "the number is 42", "number 777"],
            "responses": ["Thanks, looking it up."],
            "context_filter": "order_number",
            "context_set": "",
        },
        {"tag": "fallback", "patterns": [], "responses": ["Sorry, say again?"]},
    ]
}
# Annotated phrases of the tiny bot's order intent: a bot trained with them has an entity tagger.
ANNOTATED_ORDER = [
    "ship my order to [Berlin](city)",
    "send it to [Paris](city) please",
    "deliver my parcel to [Madrid](city)",
    "my order should go to [NYC](city:New York)",
    "track my parcel to [Rome](city)",
]
TINY_CONFIG = ModelConfig(epochs=200, seed=7, deep_weight=0.5)  # both parts, so tests cover both
# The tiny bot with an order number to remember and look up, and a goodbye that hands over.
SLOT_DATA = {
    "entities": {"order_number": {"regex": r"[a-z]{1,3}-?\d{4,6}|\d{5,6}"}},
    "slots": {"order_number": {"entity": "order_number"}},
}
ASK_NUMBER = "Which order number?"
DEFAULT_ORDERS_URL = "http://127.0.0.1:8081/"  # where the default bot's order_status looks orders up
ORDERS_SECRET = "orders-secret-0123456789"


def with_slots(bundle: Bundle, action_url: str | None = None, timeout_ms: int = 1000) -> Bundle:
    """Return the tiny bundle whose order intents require an order number and call ``action_url``."""
    require = [{"slot": "order_number", "ask": ASK_NUMBER}]
    action = {"url": action_url, "timeout_ms": timeout_ms, "fallback": "No lookup for {order_number} now."}
    changes = {
        "order": {"require": require, "responses": ["Order {order_number} is on its way."]},
        "order_number": {"require": require, "responses": ["Order {order_number}, noted."]},
        "goodbye": {"handoff": True, "responses": ["A person will answer here."]},
    }
    raw = copy.deepcopy(TINY_INTENTS) | SLOT_DATA
    for intent in raw["intents"]:
        intent.update(changes.get(intent["tag"], {}))
        if action_url and intent["tag"] in ("order", "order_number"):
            intent["action"] = action
    return dataclasses.replace(bundle, intents=tuple(validate_intents(raw)), domain=validate_domain(raw))


# A German bot with its widget texts in German; one answer is Arabic, to show right-to-left text.
GERMAN_INTENTS = {
    "language": "de-DE",
    "widget": {
        "title": "Hilfe-Chat",
        "welcome": "Hallo! Stell mir eine Frage.",
        "placeholder": "Nachricht eingeben…",
        "send": "Senden",
        "restart": "Neues Gespräch beginnen",
        "retry": "Nochmal versuchen",
        "error_network": "Der Chat ist gerade nicht erreichbar. Bitte versuche es gleich noch einmal.",
    },
    "intents": [
        {
            "tag": "wecker",
            "patterns": [
                "Stell einen Wecker für sieben Uhr",
                "Weck mich morgen um acht",
                "Wecker auf 6 Uhr stellen",
                "Kannst du mich morgen früh wecken",
                "Ich brauche einen Wecker",
            ],
            "responses": ["Der Wecker ist gestellt."],
        },
        {
            "tag": "wetter",
            "patterns": [
                "Wie wird das Wetter morgen",
                "Regnet es heute",
                "Brauche ich einen Regenschirm",
                "Wie warm ist es draußen",
                "Wettervorhersage für München",
            ],
            "responses": ["Morgen wird es sonnig."],
        },
        {
            "tag": "arabisch",
            "patterns": [
                "Sag etwas auf Arabisch",
                "Sprichst du Arabisch",
                "Antworte auf Arabisch",
                "Arabische Begrüßung bitte",
                "Wie grüßt man auf Arabisch",
            ],
            "responses": ["مرحبا! كيف يمكنني مساعدتك اليوم؟"],
        },
    ],
}


@dataclasses.dataclass(frozen=True)
class OrderBot:
    """The default bot, its actions pointed at a running example order service (deploy/orders)."""

    model_path: Path
    env: dict[str, str]  # the server settings that allow the service's URL
    orders_url: str
    orders_log: Path


def run_cli(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m chatbot`` in a subprocess, as a user would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **kwargs.pop("env", {})}
    result = subprocess.run(
        [sys.executable, "-m", "chatbot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"chatbot {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_json(path: Path, value: object) -> Path:
    """Write a JSON file and return its path."""
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def rewrite_metadata(path: Path, edit: Callable[[dict], object], architecture: dict | None = None) -> Path:
    """Edit a saved bundle's metadata (and architecture) in place and sign it again, as a tool would.

    The checksum then matches: what is left to catch a bad value is the validation at load.
    """
    import h5py

    with h5py.File(path, "r+") as file:
        metadata = json.loads(file[METADATA_KEY][()])
        edit(metadata)
        if architecture is not None:
            file.attrs["model_config"] = json.dumps(architecture)
        metadata[CHECKSUM_KEY] = metadata_checksum(metadata, json.loads(file.attrs["model_config"]))
        del file[METADATA_KEY]
        file.create_dataset(METADATA_KEY, data=json.dumps(metadata))
    return path


def record_figures(name: str, figures: dict[str, object]) -> None:
    """Keep a test's measured figures for docs/reliability.md (``make reliability-report``)."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    figures = {**figures, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (FIGURES_DIR / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def require_program(name: str) -> str:
    """Return a system program's path; skip the test without it, except under CI where it fails."""
    try:
        return harness.find_program(name)
    except harness.ProgramMissingError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI installs it: a missing program there is a broken setup
        pytest.skip(str(exc))


class Server(harness.Gunicorn):
    """A real gunicorn serving a model on a loopback port, with GET and POST for tests."""

    def get(self, path: str, **kwargs) -> requests.Response:
        """GET a path of the server."""
        return requests.get(f"{self.url}{path}", **{"timeout": 10, **kwargs})

    def post(self, path: str, payload: dict, **kwargs) -> requests.Response:
        """POST JSON to the server."""
        return requests.post(f"{self.url}{path}", json=payload, **{"timeout": 10, **kwargs})

    @contextlib.contextmanager
    def only_worker(self, pid: int) -> Iterator[None]:
        """Let worker ``pid`` alone accept connections: the other workers are paused (SIGSTOP).

        Idle workers do not take turns: the kernel may hand every new connection to the same one
        (30 of 30 in a CI run). A connection made meanwhile waits in the shared backlog until the
        one running worker accepts it.
        """
        paused = self.worker_pids() - {pid}
        try:
            for other in paused:
                os.kill(other, signal.SIGSTOP)
            yield
        finally:
            for other in paused:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(other, signal.SIGCONT)

    def version_of_each_worker(self) -> dict[int, dict]:
        """GET /version from every current worker, keyed by the pid that answered."""
        answers: dict[int, dict] = {}
        for pid in self.worker_pids():
            try:
                with self.only_worker(pid):
                    version = self.get("/version", timeout=5).json()
                answers[version["served_by"]["pid"]] = version
            except (ProcessLookupError, requests.RequestException):
                pass  # a worker was replaced meanwhile: the caller compares the pids with its own
        return answers

    def serves_on_every_worker(
        self, fingerprint: str, workers: int, replacing: set[int] = frozenset()
    ) -> bool:
        """Say whether ``workers`` workers run, none of ``replacing``, and each serves the model.

        After a reload the old workers accept connections for up to a second more (gevent's worker
        looks at its stop flag once a second), so a reload is done only once they are gone.
        """
        running = self.worker_pids()
        if len(running) != workers or running & replacing:
            return False
        versions = self.version_of_each_worker()
        fingerprints = {version["model"]["fingerprint"] for version in versions.values()}
        return set(versions) == running and fingerprints == {fingerprint}


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One request of the load: when it started and ended, and whether it got its 200."""

    started: float
    ended: float
    ok: bool


class Load:
    """Send /predict from several threads, one new connection per request, until stopped."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.attempts, self.running = url, [], True
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]

    def run(self) -> None:
        while self.running:
            started = time.monotonic()
            try:
                ok = (
                    requests.post(f"{self.url}/predict", json={"data": "hello"}, timeout=10).status_code
                    == 200
                )
            except requests.RequestException:
                ok = False
            self.attempts.append(Attempt(started, time.monotonic(), ok))

    def count_after(self, moment: float) -> int:
        return sum(attempt.started > moment for attempt in self.attempts)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.running = False
        for thread in self.threads:
            thread.join()


@contextlib.contextmanager
def running_servers() -> Iterator[Callable[..., Server]]:
    """Yield a function that starts real servers; stop all of them on exit."""
    servers: list[Server] = []

    def start(model_path: Path, env: dict[str, str] | None = None, app_uri: str | None = None) -> Server:
        server = Server(model_path, env, app_uri)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.close()


# The system programs a test runs skip that test where they are not installed (fail under CI).
class RedisServer(harness.RedisServer):
    """A real redis-server for a test; skips it without redis-server."""

    find_program = staticmethod(require_program)


class Nginx(harness.Nginx):
    """A real nginx for a test; skips it without nginx."""

    find_program = staticmethod(require_program)


class PostgresServer(harness.PostgresServer):
    """A real PostgreSQL server for a test; skips it without PostgreSQL."""

    find_program = staticmethod(require_program)


class WebhookServer(harness.ThreadedHTTPServer):
    """A real HTTP server on 127.0.0.1 playing a webhook; ``mode`` says how it answers.

    Modes: ``ok`` (a JSON reply naming the order), ``hang`` (never answers), ``500``, ``404``, ``invalid``
    (not JSON) and ``huge`` (10 MB). Every request's body and headers are kept in ``received``.
    """

    HUGE_BYTES = 10 * 1024 * 1024

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.received: list[tuple[dict, dict]] = []
        self.release = threading.Event()  # ends hanging requests at shutdown
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                webhook.received.append((body, dict(self.headers)))
                if webhook.mode == "hang":
                    webhook.release.wait(30)
                    return
                status, payload = 200, b""
                if webhook.mode == "ok":
                    number = body.get("slots", {}).get("order_number", "?")
                    answer = {"text": f"Order {number} ships today.", "quick_replies": ["Thanks"]}
                    payload = json.dumps(answer).encode()
                elif webhook.mode == "500":
                    status, payload = 500, b'{"text": "broken"}'
                elif webhook.mode == "404":
                    status, payload = 404, b'{"error": "no such order"}'
                elif webhook.mode == "invalid":
                    payload = b"<html>not json</html>"
                elif webhook.mode == "huge":
                    payload = b'{"text": "' + b"x" * webhook.HUGE_BYTES + b'"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # The client may stop reading: that is what a size cap does.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.url = f"{self.url}/hook"

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        super().__exit__(*exc_info)
