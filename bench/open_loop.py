"""Offer ``POST /predict`` at a fixed rate, whatever the server does: an open-loop load generator.

wrk is a closed loop: each connection waits for its answer before it asks again, so a slow answer
delays the requests behind it and they never count as late (and under gevent, wrk's few connections
are shared unevenly between workers). Here request i is due at ``start + i / rate``; it goes out on
an idle keep-alive connection (a new one when none is idle), and its latency counts from when it
was due, so time spent queued behind a slow answer, in the server or here, is in the figure.

Standard library only (wrk2, which does this, is not in Debian). The generator's own lateness in
sending is reported too: if it is near the latencies, the figure measures this script, not the
server. ::

    python -m bench.open_loop --url http://127.0.0.1:8000/predict --rate 400 --duration 10 \
        --model models/chatbot_model.h5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.messages import never_repeating, pattern_words

MAX_CONNECTIONS = 512  # beyond this a request waits for a connection (its wait still counts)
REQUEST_TIMEOUT_S = 10.0
FIRST_MESSAGE = 5_000_000  # numbers the in-process benchmarks do not reach


@dataclass
class Tally:
    """What the requests of one run came to."""

    latencies_s: list[float] = field(default_factory=list)  # from due time to the answer's last byte
    sent_latencies_s: list[float] = field(default_factory=list)  # from the write to the answer's last byte
    send_lateness_s: list[float] = field(default_factory=list)  # from due time to the request's write
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)


class ConnectionPool:
    """Keep-alive connections to one server: idle ones are reused, new ones opened up to a limit."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(limit)
        self.opened = 0

    async def acquire(self, fresh: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Return an idle connection (unless ``fresh``) or a new one (waiting for a slot past the limit)."""
        await self.slots.acquire()
        if self.idle and not fresh:
            return self.idle.pop()
        try:
            connection = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.slots.release()
            raise
        self.opened += 1
        return connection

    def release(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], reusable: bool) -> None:
        """Give a connection back (closed unless it can carry another request)."""
        if reusable:
            self.idle.append(connection)
        else:
            connection[1].close()
        self.slots.release()

    def close(self) -> None:
        """Close every idle connection."""
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def http_request(host: str, path: str, message: str) -> bytes:
    """Return a ``POST`` of ``{"data": message}`` as the original clients send it (text/plain)."""
    body = json.dumps({"data": message}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


async def one_request(pool: ConnectionPool, payload: bytes, due: float, tally: Tally) -> None:
    """Send one request due at ``due`` (perf_counter seconds) and record what came of it.

    A kept-alive connection the server has closed meanwhile (its keep-alive timeout) fails before
    any answer: the request is sent once more on a new connection, its latency still from ``due``.
    """
    for fresh in (False, True):
        connection = None
        reusable = False
        try:
            connection = await pool.acquire(fresh)
            reader, writer = connection
            writer.write(payload)
            sent = time.perf_counter()
            await writer.drain()
            status, reusable = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT_S)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            if fresh or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                tally.errors[type(exc).__name__] += 1
                return
            continue  # a stale kept-alive connection: once more on a new one
        except (OSError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            tally.errors[type(exc).__name__] += 1
            return
        except TimeoutError:
            tally.errors["timeout"] += 1
            return
        else:
            done = time.perf_counter()
            tally.send_lateness_s.append(sent - due)
            tally.latencies_s.append(done - due)
            tally.sent_latencies_s.append(done - sent)
            tally.statuses[status] += 1
            return
        finally:
            if connection is not None:
                pool.release(connection, reusable)


async def offer(url: str, rate: float, duration: float, messages: Iterator[str]) -> dict[str, Any]:
    """Offer ``rate`` requests a second for ``duration`` seconds; return the figures."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    pool = ConnectionPool(host, port, MAX_CONNECTIONS)
    tally = Tally()
    total = int(rate * duration)
    payloads = [http_request(f"{host}:{port}", path, next(messages)) for _ in range(total)]
    tasks = []
    start = time.perf_counter() + 0.05
    for index, payload in enumerate(payloads):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one_request(pool, payload, due, tally)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    return summarise(tally, rate, duration, total, elapsed, pool.opened)


def percentile(values: list[float], share: float) -> float:
    """Return the value below which ``share`` of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def summarise(
    tally: Tally, rate: float, duration: float, total: int, elapsed: float, connections: int
) -> dict[str, Any]:
    """Return the run's figures in milliseconds."""
    latencies = tally.latencies_s
    return {
        "offered_per_s": rate,
        "duration_s": duration,
        "requests": total,
        "answered": len(latencies),
        "answered_per_s": round(len(latencies) / elapsed, 1),
        "latency_p50_ms": round(percentile(latencies, 0.50) * 1e3, 3),
        "latency_p90_ms": round(percentile(latencies, 0.90) * 1e3, 3),
        "latency_p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1e3, 3),
        # The same from the moment each request was written: leaves out this generator's own delays.
        "latency_from_send_p99_ms": round(percentile(tally.sent_latencies_s, 0.99) * 1e3, 3),
        "send_lateness_p50_ms": round(percentile(tally.send_lateness_s, 0.50) * 1e3, 3),
        "send_lateness_p99_ms": round(percentile(tally.send_lateness_s, 0.99) * 1e3, 3),
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "connections_opened": connections,
    }


def run(url: str, rate: float, duration: float, words: list[str], seed: int = 0) -> dict[str, Any]:
    """Offer the load from this process (its own event loop) and return the figures."""
    if rate <= 0 or duration <= 0:
        raise ValueError("the rate and the duration must be positive")
    return asyncio.run(offer(url, rate, duration, never_repeating(words, FIRST_MESSAGE, seed)))


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, offer the load and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the /predict URL")
    parser.add_argument("--rate", type=float, required=True, help="requests a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--model", type=Path, required=True, help="the served bundle (its words make the messages)"
    )
    args = parser.parse_args(argv)
    from chatbot.classifier.bundle import Bundle

    print(
        json.dumps(run(args.url, args.rate, args.duration, pattern_words(Bundle.load(args.model))), indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
