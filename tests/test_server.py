"""Integration: real gunicorn processes on 127.0.0.1, as deployed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from chatbot.data import load_intents
from tests.conftest import DEFAULT_INTENTS, ROOT, free_port

pytestmark = pytest.mark.slow


def greeting_responses() -> set[str]:
    return {r for i in load_intents(DEFAULT_INTENTS) if i.tag == "greeting" for r in i.responses}


def test_original_curl_line_gets_a_greeting(serve, default_model_path) -> None:
    server = serve(default_model_path)
    response = requests.post(
        f"{server.url}/predict",
        data="""{"data":"What's%20up?"}""",
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text in greeting_responses()


def test_every_pattern_is_its_own_tag_across_processes_and_restarts(serve, default_model_path) -> None:
    intents = load_intents(DEFAULT_INTENTS)
    pairs = [(pattern, intent.tag) for intent in intents if intent.patterns for pattern in intent.patterns]
    for hash_seed in ("1", "2"):  # the model was trained in another process, with a random hash seed
        server = serve(default_model_path, {"PYTHONHASHSEED": hash_seed, "WEB_CONCURRENCY": "2"})
        predicted = []
        for start in range(0, len(pairs), 200):
            texts = [text for text, _ in pairs[start : start + 200]]
            response = server.post("/api/v1/parse", {"texts": texts})
            assert response.status_code == 200
            predicted += [result["intent"]["name"] for result in response.json()["results"]]
        wrong = [(text, tag, got) for (text, tag), got in zip(pairs, predicted, strict=True) if tag != got]
        assert wrong == []
        server.stop()


def test_gibberish_gets_the_fallback(serve, default_model_path) -> None:
    server = serve(default_model_path)
    fallback = {r for i in load_intents(DEFAULT_INTENTS) if i.tag == "fallback" for r in i.responses}
    response = requests.post(f"{server.url}/predict", json={"data": "asdf qwerty zxcv"}, timeout=10)
    assert response.text in fallback
    body = server.post("/api/v1/parse", {"text": "asdf qwerty zxcv"}).json()
    assert body["fallback"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{}", 400),
        ('{"data": null}', 422),
        ('{"data": 42}', 422),
        ('{"data": ["a"]}', 422),
        ("{not json", 400),
        ('{"data": ""}', 422),
    ],
)
def test_bad_input_gets_json_errors(serve, tiny_model_path, body: str, status: int) -> None:
    server = serve(tiny_model_path)
    response = requests.post(
        f"{server.url}/predict", data=body, headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()["error"]) == {"code", "message"}


def test_four_megabyte_body_gets_413_quickly_and_the_server_stays_healthy(serve, tiny_model_path) -> None:
    server = serve(tiny_model_path)
    body = json.dumps({"data": "a" * 4_000_000})
    started = time.monotonic()
    response = requests.post(
        f"{server.url}/predict", data=body, headers={"Content-Type": "text/plain"}, timeout=10
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_entity_too_large"
    assert elapsed < 1.0
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert requests.post(f"{server.url}/predict", json={"data": "hello"}, timeout=5).status_code == 200


def test_context_through_the_server(serve, order_bot) -> None:
    server = serve(order_bot.model_path, order_bot.env)
    first = server.post("/api/v1/chat", {"session_id": "c1", "message": "where is my order?"}).json()
    assert (first["intent"]["name"], first["context"]) == ("order_status", "order_number")
    second = server.post("/api/v1/chat", {"session_id": "c1", "message": "my order number is 12345"}).json()
    assert (second["intent"]["name"], second["fallback"], second["context"]) == (
        "order_number_given",
        False,
        None,
    )


def test_server_refuses_to_start_with_a_bad_model(tmp_path) -> None:
    model = tmp_path / "model.h5"
    model.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    env = {"CHATBOT_MODEL": str(model), "PORT": str(free_port()), "HOST": "127.0.0.1", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "corrupt or truncated model file" in result.stderr
