"""Render the figures that the reliability tests and ``make load`` wrote into docs/reliability.md.

Run from the repository root after ``make test`` (``make reliability-report``; ``make load`` runs it)::

    .venv/bin/python -m bench.reliability_report

Each test writes its measured figures to build/reliability/NAME.json (git-ignored, so a test run
leaves the tree as it was). This script publishes them to bench/results/reliability/, then turns
the published figures into the table between the markers in docs/reliability.md and leaves the rest
of the page as it is. A figure whose file is missing shows as "not run".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "bench" / "results" / "reliability"  # the published figures, in git
FRESH = REPO / "build" / "reliability"  # what the last test run measured (tests/support.py record_figures)
PAGE = REPO / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
FAULTS = "make test (tests/test_faults.py)"

Row = tuple[str, str, str, str]  # what, load or fault, outcome, command


def read(name: str) -> dict[str, Any] | None:
    """Return one test's figures, or None when it has not run here."""
    path = FIGURES / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fuzz_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the schemathesis run."""
    return [
        (
            "Fuzzing, every endpoint from /openapi.json",
            f"{f['requests']:,} generated requests over {f['operations']} operations in {f['seconds']} s (seed {f['seed']})",
            f"{f['failures']} failures, {f['server_errors']} responses 5xx",
            "make test (tests/test_fuzz.py)",
        )
    ]


def load_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the wrk runs, one row per endpoint."""
    paths = {"predict": "POST /predict", "chat": "POST /api/v1/chat"}
    return [
        (
            f"Load, {paths.get(name, name)}",
            f"{f['duration_s']} s at {f['connections']} connections, {f['workers']} workers: "
            f"{e['requests']:,} requests, {e['requests_per_s']:,} req/s",
            f"p99 {e['p99_ms']} ms (p50 {e['p50_ms']} ms), {e['errors']} errors",
            f["command"],
        )
        for name, e in f["endpoints"].items()
    ]


def worker_kill_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the worker killed under load."""
    return [
        (
            "SIGKILL of a worker under load",
            f"{f['requests']} requests from 8 clients, 2 workers",
            f"{f['failed']} failed of {f['in_flight']} in flight; replaced and ready after {f['healthy_after_s']} s",
            FAULTS,
        )
    ]


def bad_bundle_rows() -> list[Row]:
    """Describe each damaged bundle given to gunicorn and to chatbot serve."""
    rows = []
    for damage, what in (
        ("truncate", "truncated"),
        ("flip_weight_bytes", "corrupt"),
        ("drop_a_label", "mismatched"),
        ("edit_architecture", "tampered (stale checksum)"),
        ("set_a_bad_threshold", 'signed but invalid (threshold "x")'),
    ):
        for command in ("gunicorn", "chatbot_serve"):
            f = read(f"bad_bundle_{damage}_{command}")
            outcome = (
                "not run" if f is None else f"exit status {f['exit_status']}, one line: `{f['message']}`"
            )
            rows.append((f"A {what} bundle at start", f"`{command.replace('_', ' ')}`", outcome, FAULTS))
    return rows


def save_killed_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the saves killed midway."""
    return [
        (
            "Training's save killed",
            f"{f['kills']} SIGKILLs at random moments of a save loop, {f['mid_write']} of them mid-write",
            f"the model in place loaded whole {f['intact']} times of {f['kills']}; the next save removed the leftovers",
            FAULTS,
        )
    ]


def disk_full_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the save on a full disk."""
    return [
        (
            "A full disk while saving",
            "a save to a full 2 MiB tmpfs",
            f"`{f['message']}`; no partial file",
            FAULTS,
        )
    ]


def slow_client_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the slow upload."""
    return [
        (
            "A slow client",
            f"one upload at 1 byte per 0.1 s ({f['upload_seconds']} s), 1 gevent worker",
            f"{f['other_requests']} other requests answered meanwhile, the slowest in {f['max_latency_ms']} ms",
            FAULTS,
        )
    ]


def rate_limit_rows(f: dict[str, Any]) -> list[Row]:
    """Describe the shared rate limit."""
    return [
        (
            "Rate limit shared through Redis",
            f"{f['sent']} requests from one client, limit {f['limit']}, {f['workers']} workers",
            f"{f['answered']} answered, {f['refused_429']} refused with 429 and Retry-After ({f['retry_after_s']} s)",
            "make test (tests/test_security.py)",
        )
    ]


def row(what: str, load: str, outcome: str, command: str) -> Callable[[dict[str, Any]], list[Row]]:
    """Return a renderer of one row whose cells are filled in from the figures."""
    return lambda f: [(what, load.format(**f), outcome.format(**f), command)]


SERVER = "make test (tests/test_server.py)"
HARDENING: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    (
        "stalled_connections",
        "Stalled connections",
        row(
            "Stalled connections",
            "{stalled} sockets each send part of a request and stall; default server (1 gevent worker)",
            "{answered} requests (/healthz, /predict) answered meanwhile, the slowest in {max_latency_ms} ms",
            FAULTS,
        ),
    ),
    (
        "slow_clients",
        "Ordinary traffic under stalled connections",
        row(
            "Ordinary traffic under stalled connections",
            "wrk, never-repeating /predict, with and without {stalled} stalled sockets, {workers} worker",
            "{rate_ratio} of the normal rate ({attacked_requests_per_s:.0f} / {normal_requests_per_s:.0f} req/s, "
            "target >= 0.5); /healthz at most {healthz_max_ms} ms (target <= 1000)",
            "python -m bench.slow_clients",
        ),
    ),
    (
        "byte_flips",
        "One byte flipped across a bundle",
        row(
            "One byte flipped across a bundle",
            "{places} files, each with one byte flipped at its own place",
            "{refused} refused with one BundleError, {loaded_same} loaded the same model, no other error",
            "make test (tests/test_bundle.py)",
        ),
    ),
    (
        "bad_reload",
        "Bundles that load but cannot answer, reloaded",
        row(
            "Bundles that load but cannot answer, reloaded",
            'threshold "x", max_length 10^9, an intent without responses (checksums valid); '
            "an edited architecture on SIGHUP",
            "{refused_422} refused with 422; the master lives on; the old model answers throughout",
            "make test (tests/test_reload.py)",
        ),
    ),
    (
        "metrics_labels",
        "Made-up methods and paths",
        row(
            "Made-up methods and paths",
            "{requests} requests, each with its own method and path",
            "/metrics {metrics_bytes_before:,} -> {metrics_bytes_after:,} bytes: every label from a fixed set",
            "make test (tests/test_metrics.py)",
        ),
    ),
    (
        "long_words",
        "Long words",
        row(
            "Long words",
            "{requests} batches of 10 new words of 1,000 four-byte characters",
            "worker RSS +{rss_growth_mib} MiB (the stem cache keeps words of 40 characters at most)",
            "make test (tests/test_text.py)",
        ),
    ),
    (
        "session_budget",
        "In-memory sessions",
        row(
            "In-memory sessions",
            "{sessions:,} sessions of 5 turns of 1,000 four-byte characters ({offered_mib} MiB), budget {budget_mib} MiB",
            "{held_mib} MiB held (tracemalloc), the oldest sessions evicted first",
            "make test (tests/test_sessions.py)",
        ),
    ),
    (
        "redis_paused",
        "Redis paused (SIGSTOP)",
        row(
            "Redis paused (SIGSTOP)",
            "{requests} requests (chat, /predict), sessions and rate limit in Redis",
            "median {paused_median_ms} ms (before: {normal_median_ms} ms); {slow_requests} waited for "
            "Redis' timeout (one try per second)",
            "make test (tests/test_sessions.py)",
        ),
    ),
    (
        "worst_request",
        "The costliest request allowed",
        row(
            "The costliest request allowed",
            "a batch of {batch_chars:,} normalised characters of the tokenizer's costliest text",
            "{worst_ms} ms (a chat: {chat_ms} ms, same run); one text more: 413",
            "make test (tests/test_api.py)",
        ),
    ),
    (
        "reload_conversations",
        "Conversations across a reload",
        row(
            "Conversations across a reload",
            "POST /admin/reload with sessions in {store}",
            'the response says "kept": false and why (set REDIS_URL); the next message has no context, as said',
            "make test (tests/test_reload.py)",
        ),
    ),
    (
        "malformed_requests",
        "Malformed requests",
        row(
            "Malformed requests",
            "{requests} kinds: bad chunk size, chunked body over the limit, /static//x with a foreign Host, "
            "a bad request line, 9 KB of headers, a 5,000-digit number",
            "each one JSON error with the security headers, no redirect, at most {log_lines_each_at_most} log lines",
            SERVER,
        ),
    ),
    (
        "compose_nginx",
        "Operator endpoints through the compose nginx",
        row(
            "Operator endpoints through the compose nginx",
            "{blocked_paths} spellings of /admin and /metrics, GET and POST",
            "404 from nginx every time; the replica's own address still serves /metrics",
            "make test (tests/test_scale.py)",
        ),
    ),
    (
        "entity_regexes",
        "Bot-author regexes that backtrack",
        row(
            "Bot-author regexes that backtrack",
            "the {patterns} patterns of issue 21 (\\D*\\D*1 ...) on a {message_chars:,}-character message that "
            "almost matches, and a batch of ten",
            "worst {worst_ms} ms a message, {batch_ms} ms a batch, on RE2 (Python's engine before: 1.8 s and "
            "11 s a message, same machine, side by side)",
            "make test (tests/test_entities.py)",
        ),
    ),
    (
        "redaction",
        "Personal data in every format typed",
        row(
            "Personal data in every format typed",
            "{formats} formats (NBSP, U+2010, en dash, /, _, tab, glued, fullwidth, compact IBAN, ids); "
            "crafted {crafted_chars:,}-character messages",
            "{masked} masked, {kept} ordinary numbers kept; the costliest crafted message {worst_ms} ms (linear)",
            "make test (tests/test_redact.py)",
        ),
    ),
    (
        "webhook_breaker",
        "Lookups of made-up orders",
        row(
            "Lookups of made-up orders",
            "{calls} calls answered 404, then {calls} answered 500",
            "all {reached_404} 404s reach the service (the circuit stays closed); the 500s open it after "
            "{reached_500}",
            "make test (tests/test_actions.py)",
        ),
    ),
    (
        "action_allowlist",
        "Action URLs that leave the allowed prefix",
        row(
            "Action URLs that leave the allowed prefix",
            "{spellings} spellings (../, %2e%2e, ..%2f, ..;, %252e, backslash, user info, bad port)",
            "{refused} refused; the address a name resolves to is checked at call time and called as checked",
            "make test (tests/test_slots.py)",
        ),
    ),
    (
        "metrics_files",
        "Metrics files across reloads",
        row(
            "Metrics files across reloads",
            "{reloads} SIGHUPs",
            "{files} metrics files in all (was 2 more per reload), no count lost",
            "make test (tests/test_metrics.py)",
        ),
    ),
]

LOG = "make test (tests/test_log_writer.py)"
CONVERSATION_LOG: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    (
        "log_bad_rows",
        "A row the database refuses",
        row(
            "A row the database refuses",
            "a batch of {batch} with one row a database trigger refuses; before it, lone surrogates and NULs",
            "{written} written, {refused} counted refused, the writer lives on (before: the batch lost, "
            "and a surrogate ended the writer thread)",
            LOG,
        ),
    ),
    (
        "log_write_lock",
        "The log's write lock held by another process",
        row(
            "The log's write lock held by another process",
            "SQLite write lock held {held_s} s while messages arrive; /healthz every 20 ms, 1 gevent worker",
            "/healthz at most {healthz_max_ms} ms, median {healthz_median_ms} ms (target <= 100; "
            "before: frozen 3 s per retry)",
            LOG,
        ),
    ),
    (
        "review_inbox",
        "Review inbox at scale",
        row(
            "Review inbox at scale",
            "{messages:,} distinct fallbacks ({groups:,} groups) and {expired:,} expired messages; "
            "1 gevent worker, /healthz every 20 ms; machine load average {load_average} on 2 cores",
            "opens in {open_median_s} s (target <= 2; before: no answer in 35 s), Apply {apply_median_s} s "
            "(target <= 0.5); /healthz at most {healthz_max_ms} ms meanwhile (idle worker, same run: "
            "{healthz_idle_max_ms} ms; target <= 100); the sweep {sweep_s} s, /healthz at most "
            "{sweep_healthz_max_ms} ms; naming groups {write_us_per_message} us a stored message",
            "python -m bench.review_inbox --model M",
        ),
    ),
    (
        "log_growth",
        "SQLite log size",
        row(
            "SQLite log size",
            "{rows:,} messages stored in batches of 500, then deleted by retention",
            "{bytes_per_row} B a message ({full_mib} MiB, WAL {wal_full_mib} MiB); after the sweep "
            "{after_delete_mib} MiB, WAL {wal_after_mib} MiB (capped at {journal_limit_mib} MiB; before: "
            "the file kept its size)",
            "make test (tests/test_message_log.py)",
        ),
    ),
]

SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("fuzz", "Fuzzing", fuzz_rows),
    ("load", "Load", load_rows),
    ("worker_kill", "SIGKILL of a worker under load", worker_kill_rows),
    ("save_killed", "Training's save killed", save_killed_rows),
    ("disk_full", "A full disk while saving", disk_full_rows),
    ("slow_client", "A slow client", slow_client_rows),
    ("rate_limit", "Rate limit shared through Redis", rate_limit_rows),
    *HARDENING,
    *CONVERSATION_LOG,
]


def table() -> str:
    """Return the markdown table of every figure found."""
    rows: list[Row] = []
    for name, what, render in SECTIONS:
        figures = read(name)
        rows += render(figures) if figures else [(what, "", "not run", "")]
        if name == "worker_kill":
            rows += bad_bundle_rows()
    lines = ["| What | Load or fault | Outcome | Command |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    """Publish the last test run's figures and replace the table in docs/reliability.md."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    for fresh in sorted(FRESH.glob("*.json")):
        (FIGURES / fresh.name).write_bytes(fresh.read_bytes())
    page = PAGE.read_text()
    before, rest = page.split(START, 1)
    after = rest.split(END, 1)[1]
    PAGE.write_text(f"{before}{START}\n{table()}\n{END}{after}")
    print(f"wrote the figures table of {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
