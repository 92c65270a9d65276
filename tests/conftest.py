"""Shared fixtures: a tiny bot trained once per session, the app around it, and real servers.

Plain data, helpers and server classes live in tests/support.py; test files import them from there.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import create_app
from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from chatbot.data.intents import Intent, validate_intents
from chatbot.dialogue.decision import Dialogue
from tests.harness import Process, free_port, port_open
from tests.support import (
    DEFAULT_INTENTS,
    DEFAULT_ORDERS_URL,
    GERMAN_INTENTS,
    ORDERS_SECRET,
    ROOT,
    TINY_CONFIG,
    TINY_INTENTS,
    OrderBot,
    PostgresServer,
    run_cli,
    running_servers,
    with_output_biases,
    write_json,
)

pytest_plugins = ["tests.browser"]  # the Chromium fixtures: browser, page


@pytest.fixture(scope="session", autouse=True)
def conversation_log_off() -> Iterator[None]:
    """Keep the conversation log off in apps and servers, unless a test turns it on.

    Apps built on the default model path would write their database beside models/ in the repo.
    """
    previous = os.environ.get("CHATBOT_LOG")
    os.environ["CHATBOT_LOG"] = "off"
    yield
    if previous is None:
        os.environ.pop("CHATBOT_LOG", None)
    else:
        os.environ["CHATBOT_LOG"] = previous


@pytest.fixture(scope="session")
def tiny_intents() -> list[Intent]:
    """Return the tiny bot's validated intents."""
    return validate_intents(TINY_INTENTS)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_intents: list[Intent], tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Train the tiny bot once per session and return it as saved and loaded from disk."""
    from chatbot.training.train import train

    path = train(tiny_intents, TINY_CONFIG).save(tmp_path_factory.mktemp("tiny") / "tiny.h5")
    return Bundle.load(path)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a fresh copy of the tiny bundle's file."""
    return tiny_bundle.save(tmp_path_factory.mktemp("tiny-copy") / "model.h5")


@pytest.fixture(scope="session")
def retrained_bundle(tiny_bundle: Bundle) -> Bundle:
    """Return the tiny bot with slightly other weights: another model, as a retraining makes."""
    retrained = with_output_biases(tiny_bundle, lambda bias: bias + 0.01)
    return dataclasses.replace(retrained, created_at="2030-01-01T00:00:00+00:00")


@pytest.fixture(scope="session")
def default_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the default bot of data/intents.json once per session, through the CLI."""
    path = tmp_path_factory.mktemp("default") / "chatbot_model.h5"
    run_cli("train", "--data", str(DEFAULT_INTENTS), "--out", str(path), check=True)
    return path


@pytest.fixture(scope="session")
def german_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the German bot once per session, through the CLI as an author would."""
    folder = tmp_path_factory.mktemp("german")
    data = write_json(folder / "intents.json", GERMAN_INTENTS)
    run_cli("train", "--data", str(data), "--out", str(folder / "model.h5"), check=True)
    return folder / "model.h5"


@pytest.fixture(scope="session")
def order_bot(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderBot]:
    """Run deploy/orders/orders.py on a free loopback port and the default bot calling it.

    The default bot calls 127.0.0.1:8081; on a shared machine that port may be anyone's, so the
    bundle's action URLs are moved to the service's own port (no retraining: only URLs change).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    directory = tmp_path_factory.mktemp("orders")
    bundle = Bundle.load(default_model_path)
    intents = tuple(
        dataclasses.replace(
            intent,
            action=dataclasses.replace(
                intent.action, url=intent.action.url.replace(DEFAULT_ORDERS_URL, base)
            ),
        )
        if intent.action
        else intent
        for intent in bundle.intents
    )
    model_path = dataclasses.replace(bundle, intents=intents).save(directory / "model.h5")
    log_path = directory / "orders.log"
    env = {"CHATBOT_ACTION_ALLOWLIST": base, "CHATBOT_ACTION_SECRET": ORDERS_SECRET}
    service = Process(
        [sys.executable, str(ROOT / "deploy" / "orders" / "orders.py"), "--port", str(port)],
        env={**os.environ, "CHATBOT_ACTION_SECRET": ORDERS_SECRET},
        log_path=log_path,
    )
    try:

        def listens() -> bool:
            """the order service accepts connections"""
            return port_open(port)

        service.launch().wait_ready(listens, timeout=10)
        yield OrderBot(model_path, env, base, log_path)
    finally:
        service.stop(timeout=5)


@pytest.fixture
def engine(tiny_bundle: Bundle) -> Ranker:
    """Return a numpy engine for the tiny bot."""
    return Ranker.from_bundle(tiny_bundle)


@pytest.fixture
def dialogue(engine: Ranker) -> Dialogue:
    """Return a dialogue over the tiny bot with a seeded choice of responses."""
    return Dialogue(engine, threshold=0.5, rng=random.Random(0))


@pytest.fixture
def app(dialogue: Dialogue):
    """Return the Flask app around the tiny bot, with fresh sessions per test."""
    return create_app(
        {"TESTING": True, "CORS_ORIGINS": ("http://127.0.0.1:8001",), "RATE_LIMIT": None}, dialogue=dialogue
    )


@pytest.fixture
def client(app):
    """Return a Flask test client."""
    return app.test_client()


@pytest.fixture
def serve() -> Iterator:
    """Start real servers for a test and stop all of them afterwards."""
    with running_servers() as start:
        yield start


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Collect the system programs a test starts and stop every one afterwards, even on failure."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """Start one PostgreSQL server for a test module; stop and delete it afterwards."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
        server.remove()
