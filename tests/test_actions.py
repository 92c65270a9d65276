"""The webhook client: deadline, size cap, one retry on a refused connection, per-URL circuit breaker."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from app.actions import BREAKER_FAILURES, BreakersByUrl, WebhookClient, WebhookError
from chatbot.data.actions import SIGNATURE_HEADER, verify
from tests.harness import free_port
from tests.support import WebhookServer, record_figures

EVENT = {"event": "action", "slots": {"order_number": "12345"}}


def test_a_reply_comes_back_signed_both_ways() -> None:
    with WebhookServer("ok") as webhook:
        body = WebhookClient("secret-0123456789abc").post(webhook.url, EVENT, 1000)
    assert body == b'{"text": "Order 12345 ships today.", "quick_replies": ["Thanks"]}'
    ((_, headers),) = webhook.received
    assert verify(
        b'{"event": "action", "slots": {"order_number": "12345"}}',
        "secret-0123456789abc",
        headers[SIGNATURE_HEADER],
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
    client = WebhookClient(None, BreakersByUrl(cooldown=30, clock=lambda: now[0]))
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


@pytest.mark.parametrize(("mode", "opens"), [("404", False), ("500", True)])
def test_only_failures_of_the_service_open_the_circuit(mode: str, opens: bool) -> None:
    """Lookups of made-up orders (404, an ordinary answer) cannot switch a webhook off for everyone."""
    client = WebhookClient(None)
    with WebhookServer(mode) as webhook:
        for _ in range(BREAKER_FAILURES * 2):
            with pytest.raises(WebhookError) as failure:
                # A deadline only a hung server misses: on a loaded machine a timeout would count
                # as the service's fault and open the circuit for the 404s too.
                client.post(webhook.url, EVENT, 10_000)
            if failure.value.outcome == "circuit_open":
                break
        calls = len(webhook.received)
    assert failure.value.outcome == ("circuit_open" if opens else "http_error")
    assert calls == (BREAKER_FAILURES if opens else BREAKER_FAILURES * 2)


@pytest.mark.parametrize(
    ("resolved", "outcome"), [("127.0.0.1", "forbidden_address"), ("169.254.169.254", "forbidden_address")]
)
def test_a_name_that_resolves_to_a_forbidden_address_is_not_called(
    monkeypatch: pytest.MonkeyPatch, resolved: str, outcome: str
) -> None:
    """DNS rebinding: an allowed name that starts to resolve to this machine or the metadata service."""
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_dns(host: str, port: int, *args: object, **kwargs: object) -> list:
        return real_getaddrinfo(resolved if host == "orders.example" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    with WebhookServer("ok") as webhook, pytest.raises(WebhookError) as failure:
        WebhookClient(None).post(webhook.url.replace("127.0.0.1", "orders.example"), EVENT, 1000)
    assert failure.value.outcome == outcome
    assert webhook.received == []


def test_the_name_is_looked_up_once_and_that_address_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second lookup at connect time is what a rebinding DNS answers differently: there is none."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def counting_dns(host: str, port: int, *args: object, **kwargs: object) -> list:
        lookups.append(host)
        return real_getaddrinfo("127.0.0.1" if host == "localhost" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting_dns)
    with WebhookServer("ok") as webhook:
        WebhookClient(None).post(webhook.url.replace("127.0.0.1", "localhost"), EVENT, 1000)
    assert lookups.count("localhost") == 1
    assert webhook.received[0][1]["Host"].startswith("localhost:")


def test_figures_made_up_orders_and_a_broken_service() -> None:
    """Record, for docs/reliability.md, what 20 lookups of made-up orders and 20 calls to a 500 do."""
    reached = {}
    for mode in ("404", "500"):
        client = WebhookClient(None)
        with WebhookServer(mode) as webhook:
            for _ in range(20):
                with pytest.raises(WebhookError):
                    client.post(webhook.url, EVENT, 1000)
            reached[mode] = len(webhook.received)
    record_figures(
        "webhook_breaker", {"calls": 20, "reached_404": reached["404"], "reached_500": reached["500"]}
    )
    assert (reached["404"], reached["500"]) == (20, BREAKER_FAILURES)
