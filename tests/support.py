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
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from chatbot.classifier.bundle import CHECKSUM_KEY, METADATA_KEY, Bundle, metadata_checksum
from chatbot.classifier.config import ModelConfig
from chatbot.classifier.ranker import Ranker
from chatbot.data.intents import validate_intents
from chatbot.data.slots import validate_domain
from chatbot.dialogue.decision import Dialogue
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


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
    """Answer a request with a JSON body; a client that stops reading (as a size cap does) is no error."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(payload)


class RecordingApi(harness.ThreadedHTTPServer):
    """A real HTTP API on 127.0.0.1 that keeps every JSON POST (``record``) and answers it (``answer``).

    ``mode`` says how it answers: ``hang`` never does (until the ``with`` block ends); the other modes
    are the subclass's.
    """

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.release = threading.Event()  # ends hanging requests at shutdown
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.record(self.path, body, dict(self.headers))
                if api.mode == "hang":
                    api.release.wait(30)
                    return
                send_json(self, *api.answer(body))

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(Handler)

    def record(self, path: str, body: dict, headers: dict) -> None:
        raise NotImplementedError

    def answer(self, body: dict) -> tuple[int, bytes]:
        """The status and JSON body to answer a request with, in the current mode."""
        raise NotImplementedError

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        super().__exit__(*exc_info)


class WebhookServer(RecordingApi):
    """A webhook (a bot's action): ``received`` keeps each request's body and headers.

    Modes: ``ok`` (a JSON reply naming the order), ``hang``, ``500``, ``404``, ``invalid`` (not JSON)
    and ``huge`` (10 MB).
    """

    HUGE_BYTES = 10 * 1024 * 1024

    def __init__(self, mode: str = "ok") -> None:
        self.received: list[tuple[dict, dict]] = []
        super().__init__(mode)
        self.url = f"{self.url}/hook"

    def record(self, path: str, body: dict, headers: dict) -> None:
        self.received.append((body, headers))

    def answer(self, body: dict) -> tuple[int, bytes]:
        if self.mode == "ok":
            number = body.get("slots", {}).get("order_number", "?")
            return 200, json.dumps(
                {"text": f"Order {number} ships today.", "quick_replies": ["Thanks"]}
            ).encode()
        return {
            "500": (500, b'{"text": "broken"}'),
            "404": (404, b'{"error": "no such order"}'),
            "invalid": (200, b"<html>not json</html>"),
            "huge": (200, b'{"text": "' + b"x" * self.HUGE_BYTES + b'"}'),
        }.get(self.mode, (200, b""))


# ---- the channels' platforms (Telegram, Slack) and an app that talks to them -------------------

ADMIN_TOKEN = "admin-token-0123456789abcdef"
TELEGRAM_TOKEN = "123456:telegram-bot-token-abcdef"
TELEGRAM_SECRET = "telegram-webhook-secret-0123"
SLACK_SECRET = "slack-signing-secret-0123456789"
SLACK_TOKEN = "xoxb-slack-bot-token-0123"
BOT_USER = "UBOT"  # the Slack bot's own user id


class PlatformApi(RecordingApi):
    """Telegram's or Slack's API: ``received`` keeps each call's path, JSON body and headers.

    Modes: ``ok``, ``500``, ``hang`` and ``refuse``, which answers 200 with ``{"ok": false}``, as both
    APIs do for a call they reject.
    """

    def __init__(self, mode: str = "ok") -> None:
        self.received: list[tuple[str, dict, dict]] = []
        super().__init__(mode)

    def record(self, path: str, body: dict, headers: dict) -> None:
        self.received.append((path, body, headers))

    def answer(self, body: dict) -> tuple[int, bytes]:
        if self.mode == "500":
            return 500, json.dumps({"ok": False, "error": "internal"}).encode()
        if self.mode == "refuse":
            return 200, json.dumps({"ok": False, "error": "channel_not_found"}).encode()
        return 200, json.dumps({"ok": True, "result": {"message_id": len(self.received)}}).encode()


def platform_config(api_url: str) -> dict:
    """The app's settings for Telegram and Slack, both calling the API at ``api_url``."""
    return {
        "TELEGRAM_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_SECRET": TELEGRAM_SECRET,
        "TELEGRAM_API_URL": api_url,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": api_url,
    }


def slot_bot_app(tiny_bundle: Bundle, **config: object) -> Flask:
    """An in-process app over the tiny bot with slots (``bye`` hands over), the admin token set."""
    dialogue = Dialogue(Ranker.from_bundle(with_slots(tiny_bundle)), 0.5, random.Random(0))
    settings = {"TESTING": True, "RATE_LIMIT": None, "ADMIN_TOKEN": ADMIN_TOKEN} | config
    return create_app(settings, dialogue=dialogue)


def rest(client: FlaskClient, sender: str, message: str, **extra: object) -> list[dict]:
    """Send a message through the Rasa-compatible REST channel; return the bot's messages."""
    response = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def telegram_update(update_id: int, text: str, chat_id: int = 42) -> dict:
    """A Telegram update carrying a text message from ``chat_id``."""
    return {
        "update_id": update_id,
        "message": {"message_id": update_id, "from": {"id": chat_id}, "chat": {"id": chat_id}, "text": text},
    }


def post_telegram(client: FlaskClient, update: dict, secret: str = TELEGRAM_SECRET) -> TestResponse:
    return client.post("/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})


def slack_body(event_id: str, text: str, user: str = "U1", **event: object) -> dict:
    """A Slack Events API callback carrying a message from ``user`` in channel C1."""
    return {
        "type": "event_callback",
        "event_id": event_id,
        "authorizations": [{"user_id": BOT_USER}],
        "event": {"type": "message", "channel": "C1", "user": user, "text": text, **event},
    }


def with_output_biases(bundle: Bundle, shift: Callable[[Any], Any]) -> Bundle:
    """Return the bundle with ``shift`` applied to the bias of every softmax over its labels (the
    joined one and the sentence vector's): another model, as a retraining makes."""
    weights = {layer: dict(values) for layer, values in bundle.weights.items()}
    outputs = 0
    for values in weights.values():
        for name, value in values.items():
            if name.endswith("bias") and value.shape == (len(bundle.labels),):
                values[name] = shift(value.copy())
                outputs += 1
    assert outputs, "no softmax over the labels in the bundle"
    return dataclasses.replace(bundle, weights=weights)
