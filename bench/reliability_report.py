"""Render the figures that the reliability tests and ``make load`` wrote into docs/reliability.md.

Run from the repository root (``make reliability-report``; ``make test`` and ``make load`` run it)::

    .venv/bin/python -m bench.reliability_report

Each test writes its measured figures to bench/results/reliability/NAME.json; this script turns
them into the table between the markers in docs/reliability.md and leaves the rest of the page as
it is. A figure whose file is missing shows as "not run".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "bench" / "results" / "reliability"
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
            f"one upload at 1 byte per 0.1 s ({f['upload_seconds']} s), 1 worker of 4 threads",
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


SECTIONS: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("fuzz", "Fuzzing", fuzz_rows),
    ("load", "Load", load_rows),
    ("worker_kill", "SIGKILL of a worker under load", worker_kill_rows),
    ("save_killed", "Training's save killed", save_killed_rows),
    ("disk_full", "A full disk while saving", disk_full_rows),
    ("slow_client", "A slow client", slow_client_rows),
    ("rate_limit", "Rate limit shared through Redis", rate_limit_rows),
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
    """Replace the table in docs/reliability.md."""
    page = PAGE.read_text()
    before, rest = page.split(START, 1)
    after = rest.split(END, 1)[1]
    PAGE.write_text(f"{before}{START}\n{table()}\n{END}{after}")
    print(f"wrote the figures table of {PAGE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
