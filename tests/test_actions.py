"""The webhook client: deadline, size cap, one retry on a refused connection, per-URL circuit breaker."""

from __future__ import annotations

import http.client
import time

import pytest

from app.actions import BREAKER_FAILURES, CircuitBreaker, WebhookClient, WebhookError
from chatbot.data.actions import SIGNATURE_HEADER, sign
from tests.harness import free_port
from tests.support import WebhookServer

EVENT = {"event": "action", "slots": {"order_number": "12345"}}


def test_a_reply_comes_back_signed_both_ways() -> None:
    with WebhookServer("ok") as webhook:
        body = WebhookClient("secret-0123456789abc").post(webhook.url, EVENT, 1000)
    assert body == b'{"text": "Order 12345 ships today.", "quick_replies": ["Thanks"]}'
    ((_, headers),) = webhook.received
    assert headers[SIGNATURE_HEADER] == sign(
        b'{"event": "action", "slots": {"order_number": "12345"}}', "secret-0123456789abc"
    )


def test_without_a_secret_events_go_unsigned() -> None:
    with WebhookServer("ok") as webhook:
        WebhookClient(None).post(webhook.url, EVENT, 1000)
    assert SIGNATURE_HEADER not in webhook.received[0][1]


@pytest.mark.parametrize(
    ("mode", "outcome"), [("hang", "timeout"), ("500", "http_error"), ("huge", "too_large")]
)
def test_failures_end_within_the_deadline(mode: str, outcome: str) -> None:
    with WebhookServer(mode) as webhook:
        started = time.monotonic()
        with pytest.raises(WebhookError) as failure:
            WebhookClient(None).post(webhook.url, EVENT, 300)
        elapsed = time.monotonic() - started
    assert failure.value.outcome == outcome
    assert elapsed < 0.3 + 0.5, elapsed  # the deadline, plus slack for a busy shared machine


def test_a_refused_connection_is_tried_once_more(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[int] = []
    real_connect = http.client.HTTPConnection.connect

    def flaky_connect(connection: http.client.HTTPConnection) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("restarting")
        real_connect(connection)

    monkeypatch.setattr(http.client.HTTPConnection, "connect", flaky_connect)
    with WebhookServer("ok") as webhook:
        assert WebhookClient(None).post(webhook.url, EVENT, 1000).startswith(b'{"text"')
    assert len(attempts) == 2


def test_a_url_that_keeps_failing_is_left_alone_for_the_cooldown() -> None:
    now = [0.0]
    client = WebhookClient(None, CircuitBreaker(cooldown=30, clock=lambda: now[0]))
    url = f"http://127.0.0.1:{free_port()}/down"  # nothing listens
    for _ in range(BREAKER_FAILURES):
        with pytest.raises(WebhookError, match="unreachable"):
            client.post(url, EVENT, 200)
    with pytest.raises(WebhookError, match="circuit_open"):
        client.post(url, EVENT, 200)
    with WebhookServer("ok") as webhook:  # other URLs are not affected
        client.post(webhook.url, EVENT, 1000)
        now[0] = 31.0  # after the cooldown, one trial call goes out; a success closes the circuit
        client.post(webhook.url.replace("/hook", "/down"), EVENT, 1000)
    with pytest.raises(WebhookError, match="unreachable"):  # the trial to the dead URL fails again
        client.post(url, EVENT, 200)
    with pytest.raises(WebhookError, match="circuit_open"):
        client.post(url, EVENT, 200)
