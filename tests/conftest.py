"""Shared fixtures: a tiny bot trained once per session, the app around it, and a real server."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app
from chatbot.bundle import Bundle
from chatbot.config import ModelConfig
from chatbot.data import Intent, validate_intents
from chatbot.dialogue import Dialogue
from chatbot.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INTENTS = ROOT / "data" / "intents.json"

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
TINY_CONFIG = ModelConfig(epochs=200, seed=7)


@pytest.fixture(scope="session")
def tiny_intents() -> list[Intent]:
    """Return the tiny bot's validated intents."""
    return validate_intents(TINY_INTENTS)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_intents: list[Intent], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Train the tiny bot once per session and return it as saved and loaded from disk."""
    from chatbot.train import train

    path = train(tiny_intents, TINY_CONFIG).save(tmp_path_factory.mktemp("tiny") / "tiny.h5")
    return Bundle.load(path)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh copy of the tiny bundle's file."""
    return tiny_bundle.save(tmp_path_factory.mktemp("tiny-copy") / "model.h5")


@pytest.fixture(scope="session")
def default_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the default bot of data/intents.json once per session, through the CLI."""
    path = tmp_path_factory.mktemp("default") / "chatbot_model.h5"
    run_cli("train", "--data", str(DEFAULT_INTENTS), "--out", str(path), check=True)
    return path


@pytest.fixture
def engine(tiny_bundle: Bundle) -> Engine:
    """Return a numpy engine for the tiny bot."""
    return Engine.from_bundle(tiny_bundle)


@pytest.fixture
def dialogue(engine: Engine) -> Dialogue:
    """Return a dialogue over the tiny bot with a seeded choice of responses."""
    return Dialogue(engine, threshold=0.5, rng=random.Random(0))


@pytest.fixture
def app(dialogue: Dialogue):
    """Return the Flask app around the tiny bot, with fresh sessions per test."""
    return create_app({"TESTING": True, "CORS_ORIGINS": ("http://127.0.0.1:8001",)}, dialogue=dialogue)


@pytest.fixture
def client(app):
    """Return a Flask test client."""
    return app.test_client()


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


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real gunicorn process serving the app on a loopback port."""

    def __init__(self, model_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CHATBOT_MODEL": str(model_path),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        # A file, not a pipe: an unread pipe fills up and blocks gunicorn. Closed by the fixture.
        self.log_file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def start(self, timeout: float = 30.0) -> Server:
        """Start gunicorn and wait until /readyz answers."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"gunicorn did not become ready:\n{self.output()}")

    def stop(self) -> None:
        """Stop gunicorn and its workers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        """Stop the server and return what it printed."""
        self.stop()
        self.log_file.seek(0)
        return self.log_file.read()

    def post(self, path: str, payload: dict, **kwargs) -> requests.Response:
        """POST JSON to the server."""
        return requests.post(f"{self.url}{path}", json=payload, timeout=10, **kwargs)


@contextlib.contextmanager
def running_servers() -> Iterator:
    """Yield a function that starts real servers; stop all of them on exit."""
    servers: list[Server] = []

    def start(model_path: Path, env: dict[str, str] | None = None) -> Server:
        server = Server(model_path, env)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
            server.log_file.close()


@pytest.fixture
def serve() -> Iterator:
    """Start real servers for a test and stop all of them afterwards."""
    with running_servers() as start:
        yield start


def write_json(path: Path, value: object) -> Path:
    """Write a JSON file and return its path."""
    path.write_text(json.dumps(value), encoding="utf-8")
    return path
