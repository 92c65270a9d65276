"""Integration: real gunicorn processes on 127.0.0.1, as deployed."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time

import pytest
import requests

from chatbot.data.intents import load_intents
from tests.harness import free_port, gunicorn_command, wait_until
from tests.support import DEFAULT_INTENTS, ROOT, record_figures

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
        gunicorn_command(),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "corrupt or truncated model file" in result.stderr


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes and return the answer's status, headers (lower-case names) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        # A server that answers before reading a whole oversized body may reset the connection
        # after its answer: what came before the reset is the answer.
        with contextlib.suppress(ConnectionResetError):
            while chunk := connection.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


CHUNKED = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


def chunked(body: bytes) -> bytes:
    return CHUNKED + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


MALFORMED = [  # the request, the status and error code it must get
    (CHUNKED + b"0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n", 400, "invalid_body"),  # a bad chunk size
    (CHUNKED + b"5\r\nhello\r\nzz\r\n", 400, "invalid_body"),
    (chunked(b'{"data": "' + b"a" * 70_000 + b'"}'), 413, "request_entity_too_large"),
    (chunked(b'{"data": "hello"}'), 200, None),
    (b"GET /static//x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 404, "not_found"),
    (b"GET /healthz/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 200, None),
    (b"GET / HTTP/1.1 junk\r\n\r\n", 400, "bad_request"),  # refused by gunicorn itself
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n", 431, None),
    (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5011\r\n"
        b'Connection: close\r\n\r\n{"data": ' + b"1" * 5000 + b"}\r\n",
        400,
        "invalid_json",
    ),
]


def test_malformed_requests_get_one_json_error_with_the_security_headers(serve, tiny_model_path) -> None:
    """Issue 13, finding 10: 500s with 40 log lines, a cut body read as JSON, a redirect to the
    Host header's site, gunicorn's HTML pages without our headers, a number "not UTF-8"."""
    server = serve(tiny_model_path)
    for request_bytes, status, code in MALFORMED:
        log_lines = len(server.log_so_far().splitlines())
        answer_status, headers, body = raw_exchange(server.port, request_bytes)
        assert answer_status == status, request_bytes[:60]
        assert "location" not in headers
        assert headers["content-type"].startswith(("application/json", "text/plain"))
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        if code is not None:
            assert json.loads(body)["error"]["code"] == code
        if code == "invalid_json":
            assert json.loads(body)["error"]["message"] == "a number in the body has too many digits"
        time.sleep(0.1)
        new_lines = server.log_so_far().splitlines()[log_lines:]
        assert len(new_lines) <= 2 and "Traceback" not in "\n".join(new_lines)  # an access line at most
    record_figures("malformed_requests", {"requests": len(MALFORMED), "log_lines_each_at_most": 2})


def test_workers_boot_without_a_traceback(serve, tiny_model_path) -> None:
    """The default rate limiter counts in memory, with a timer started in the master at load: a
    worker forked while it was pending logged a KeyError traceback from threading at every boot."""
    server = serve(tiny_model_path, {"CHATBOT_RATE_LIMIT": "60/minute", "WEB_CONCURRENCY": "2"})
    wait_until(lambda: len(server.worker_pids()) == 2)
    assert server.post("/predict", {"data": "hi"}).status_code == 200
    time.sleep(0.5)  # a forked timer fails 10 ms after the worker starts
    assert "Traceback" not in server.log_so_far()
