"""bench/open_loop.py: every request of a fixed rate is sent when due and counted once, and a
kept-alive connection the server closed meanwhile costs a retry, not an error."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

from bench import open_loop
from tests.harness import ThreadedHTTPServer

WORDS = ["where", "is", "my", "order", "thanks"]


def handler_class(
    messages: list[str], close_every: int, delay_s: float = 0.0
) -> type[BaseHTTPRequestHandler]:
    """A /predict that records each message and closes the connection after ``close_every``
    answers on it (0: never) without saying so, as a server's keep-alive timeout does."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        answered_here = 0

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                messages.append(json.loads(body)["data"])
            time.sleep(delay_s)
            answer = b'{"answer": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            self.answered_here += 1
            if close_every and self.answered_here % close_every == 0:
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_a_fixed_rate_sends_every_request_once_with_messages_that_never_repeat() -> None:
    messages: list[str] = []
    with ThreadedHTTPServer(handler_class(messages, close_every=0)) as server:
        started = time.perf_counter()
        result = open_loop.run(f"{server.url}/predict", rate=200, duration=1.0, words=WORDS)
        elapsed = time.perf_counter() - started
    assert result["requests"] == result["answered"] == 200 and result["statuses"] == {"200": 200}
    assert elapsed >= 0.95  # sent at the rate, not as fast as it could
    assert len(set(messages)) == len(messages) == 200
    assert 0 < result["latency_p50_ms"] <= result["latency_p99_ms"] <= result["latency_max_ms"]
    assert result["errors"] == {}


def test_latency_counts_from_when_a_request_was_due() -> None:
    """One connection's worth of slow answers: requests queue, and the queueing is in the figure."""
    messages: list[str] = []
    with ThreadedHTTPServer(handler_class(messages, close_every=0, delay_s=0.05)) as server:
        result = open_loop.run(f"{server.url}/predict", rate=100, duration=0.5, words=WORDS)
    assert result["answered"] == 50
    assert result["latency_p50_ms"] >= 50  # the server's own 50 ms at least


def test_a_connection_the_server_closed_is_retried_on_a_new_one() -> None:
    messages: list[str] = []
    with ThreadedHTTPServer(handler_class(messages, close_every=2)) as server:
        result = open_loop.run(f"{server.url}/predict", rate=50, duration=1.0, words=WORDS)
    assert result["answered"] == 50 and result["errors"] == {}
    assert result["connections_opened"] > 1
