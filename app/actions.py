"""Call webhooks (an intent's action, the operator's handoff hook) without ever hurting the worker.

Every call is bounded: one deadline covers connecting, sending and reading (``timeout_ms``), the
reply is read up to ``MAX_REPLY_BYTES`` and dropped beyond, a refused or reset connection is tried
once more while time remains, and a per-URL circuit breaker stops calling a URL that keeps failing
for ``BREAKER_COOLDOWN`` seconds. Failures raise WebhookError carrying a short outcome name for
/metrics; the caller answers with fallback text. Plain ``http.client``: no new dependency, and it
lets the deadline reach every socket read.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from app.breaker import CircuitBreaker
from chatbot.data.actions import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024  # a webhook's answer is a few lines of text; anything bigger is a fault
CHUNK_BYTES = 16 * 1024
BREAKER_FAILURES = 5  # consecutive failures that open a URL's circuit
BREAKER_COOLDOWN = 30.0  # seconds an open circuit refuses calls before one trial call
CONNECT_ERRORS = (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError)


class WebhookError(Exception):
    """A webhook call failed; ``outcome`` names how, as counted in /metrics.

    ``service_fault`` says whether the failure is the service's (no answer in time, a refused
    connection, a 5xx, an oversized reply): only those count towards opening its circuit. A 4xx is
    an ordinary answer about the request ("no such order"), which any visitor can provoke at will.
    """

    def __init__(self, outcome: str, detail: str, service_fault: bool = True) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.service_fault = service_fault


class BreakersByUrl:
    """Keep one circuit breaker (app/breaker.py) per URL: a URL that keeps failing is left alone."""

    def __init__(
        self,
        failures: int = BREAKER_FAILURES,
        cooldown: float = BREAKER_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self._circuits: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def allows(self, url: str) -> bool:
        """Say whether a call may go out: the circuit is closed, or its cooldown is over (a trial)."""
        return self._circuit(url).allow()

    def record(self, url: str, error: WebhookError | None) -> None:
        """Close the circuit after a success (no error); count a failure and open it at the limit."""
        if error is None:
            self._circuit(url).succeeded()
        else:
            self._circuit(url).failed(error)

    def _circuit(self, url: str) -> CircuitBreaker:
        with self._lock:
            if (circuit := self._circuits.get(url)) is None:
                circuit = self._circuits[url] = CircuitBreaker(
                    retry_after=self.cooldown,
                    failures_to_open=self.failures,
                    clock=self.clock,
                    on_open=functools.partial(self._log_open, url),
                )
            return circuit

    def _log_open(self, url: str, error: Exception) -> None:
        log.warning(
            "webhook %s failed %d times in a row (%s): not called for %.0f s",
            url,
            self.failures,
            error,
            self.cooldown,
        )


class WebhookClient:
    """POST signed JSON events to webhooks with a deadline, a size cap, a retry and circuit breakers."""

    def __init__(self, secret: str | None, breaker: BreakersByUrl | None = None) -> None:
        self.secret = secret
        self.breaker = breaker or BreakersByUrl()

    def post(
        self, url: str, event: dict[str, Any], timeout_ms: int, headers: dict[str, str] | None = None
    ) -> bytes:
        """Send the event and return the reply body; raise WebhookError on any failure.

        ``headers`` adds to the JSON ones (a channel's API wants its token in Authorization).
        """
        if not self.breaker.allows(url):
            raise WebhookError("circuit_open", f"{url} failed repeatedly; not called during the cooldown")
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        try:
            reply = _post(url, body, headers, time.monotonic() + timeout_ms / 1000)
        except WebhookError as exc:
            # A 4xx is an answer about the request, not a fault of the service (WebhookError).
            self.breaker.record(url, exc if exc.service_fault else None)
            raise
        self.breaker.record(url, None)
        return reply


def _post(url: str, body: bytes, headers: dict[str, str], deadline: float) -> bytes:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    address = resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), url)
    for attempt in (1, 2):
        connection = connection_class(parts.hostname, parts.port, timeout=_remaining(deadline))
        # Connect to the address just checked, never to a second lookup of the name (DNS rebinding);
        # the Host header and TLS still use the name.
        connection._create_connection = functools.partial(_connect_to, address)  # type: ignore[attr-defined]
        try:
            connection.connect()
        except CONNECT_ERRORS as exc:
            connection.close()
            if attempt == 2 or deadline - time.monotonic() <= 0:
                raise WebhookError("unreachable", f"{url}: {exc}") from exc
            continue  # a restarted service or a full backlog: worth one more try
        except TimeoutError as exc:
            connection.close()
            raise WebhookError("timeout", f"{url}: no connection within the timeout") from exc
        except OSError as exc:  # an unknown host, no route
            connection.close()
            raise WebhookError("unreachable", f"{url}: {exc}") from exc
        try:
            return _exchange(connection, path, body, headers, deadline, url)
        finally:
            connection.close()
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def resolve(host: str, port: int, url: str) -> str:
    """Return the address to call for a host, refusing addresses no webhook may have.

    The name is looked up at call time, and every address it has must pass: a link-local address
    (169.254.169.254 is the cloud metadata service), an unspecified, multicast or reserved one is
    never a webhook, and a loopback address only when the URL names it literally (``127.0.0.1``,
    ``localhost``), so a name on the allowlist that starts to resolve to this machine is refused.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookError("unreachable", f"{url}: {host} does not resolve ({exc})") from exc
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        forbidden = ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved
        if forbidden or (ip.is_loopback and not _names_loopback(host)):
            raise WebhookError(
                "forbidden_address", f"{url}: {host} resolves to {address}, which no webhook may have", False
            )
    return addresses[0]


def _names_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect_to(
    address: str, host_and_port: tuple[str, int], timeout: float, source_address: Any = None
) -> socket.socket:
    return socket.create_connection((address, host_and_port[1]), timeout, source_address)


def _exchange(
    connection: http.client.HTTPConnection,
    path: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    url: str,
) -> bytes:
    sock = connection.sock  # kept: http.client drops connection.sock once a closing reply arrives
    try:
        connection.request("POST", path, body=body, headers=headers)
        sock.settimeout(_remaining(deadline))
        with connection.getresponse() as response:  # closing it releases the socket it holds
            return _read_reply(response, sock, deadline, url)
    except TimeoutError as exc:
        raise WebhookError("timeout", f"{url}: no complete answer within the timeout") from exc
    except (OSError, http.client.HTTPException) as exc:  # a reset, a malformed status line
        raise WebhookError("unreachable", f"{url}: {exc!r}") from exc


def _read_reply(response: http.client.HTTPResponse, sock: socket.socket, deadline: float, url: str) -> bytes:
    if not 200 <= response.status < 300:
        raise WebhookError(
            "http_error", f"{url} answered {response.status}", service_fault=response.status >= 500
        )
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
        raise WebhookError("too_large", f"{url} sends {declared} bytes (limit {MAX_REPLY_BYTES})")
    chunks: list[bytes] = []
    size = 0
    while chunk := _read_chunk(sock, response, deadline):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise WebhookError("too_large", f"{url} sends more than {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _read_chunk(sock: socket.socket, response: http.client.HTTPResponse, deadline: float) -> bytes:
    sock.settimeout(_remaining(deadline))  # the deadline covers the whole reply, not each read
    return response.read1(CHUNK_BYTES)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining
