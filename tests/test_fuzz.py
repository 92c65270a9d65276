"""Fuzz every endpoint of a real gunicorn from its OpenAPI description with schemathesis.

At least 5,000 generated requests, valid and invalid, must get no 5xx and answers that match the
description: status, content type, headers and body schema. Rate limiting is off on this server
(the 429 is described and tested in tests/test_security.py); the admin token is set but not given
to schemathesis, so no request may get past it.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import record_figures

pytestmark = pytest.mark.slow

MIN_REQUESTS = 5000
# Per operation; the operations with inputs each reach this many, the others are a few requests.
MAX_EXAMPLES = int(os.environ.get("CHATBOT_FUZZ_EXAMPLES", "1000"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def test_fuzzing_finds_no_server_error_and_no_answer_off_the_description(
    serve, tiny_model_path: Path, tmp_path: Path
) -> None:
    env = {"WEB_CONCURRENCY": "2", "CHATBOT_ADMIN_TOKEN": "fuzz-admin-token-0123456789"}
    server = serve(tiny_model_path, env)
    seed = int(os.environ.get("CHATBOT_FUZZ_SEED", time.time_ns() % 2**32))  # printed on failure
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(seed),
        "--workers",
        "1",  # measured: a second worker only competes with gunicorn for the 2 cores
        "--generation-database",
        "none",
        "--report",
        "har,json",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"seed {seed}:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"

    entries = json.loads(next(tmp_path.glob("har-*.json")).read_text())["log"]["entries"]
    report = json.loads(next(tmp_path.glob("json-*.json")).read_text())
    statuses = collections.Counter(entry["response"]["status"] for entry in entries)
    # The review page's and the console's shells hold no data: their scripts need the token.
    admin = {
        e["response"]["status"]
        for e in entries
        if "/admin/" in e["request"]["url"]
        and not e["request"]["url"].split("?")[0].endswith(("/admin/review", "/admin/inbox"))
    }
    assert len(entries) >= MIN_REQUESTS
    assert not [status for status in statuses if status >= 500]
    assert report["test_cases"]["with_failures"] == 0 and report["errors"] == []
    assert not [status for status in admin if status < 300], "a request without the token got through"
    assert "Traceback" not in server.log_so_far()
    record_figures(
        "fuzz",
        {
            "command": "make test (tests/test_fuzz.py: schemathesis run --max-examples "
            f"{MAX_EXAMPLES} --checks {','.join(CHECKS)})",
            "requests": len(entries),
            "operations": report["operations"]["tested"],
            "failures": report["test_cases"]["with_failures"],
            "server_errors": sum(count for status, count in statuses.items() if status >= 500),
            "statuses": {str(status): count for status, count in sorted(statuses.items())},
            "seconds": round(seconds, 1),
            "seed": seed,
        },
    )
