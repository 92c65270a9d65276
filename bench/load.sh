#!/usr/bin/env bash
# Hold load on /predict and /api/v1/chat with wrk: DURATION seconds (60) at 16 connections each,
# against a real gunicorn on 127.0.0.1 as app/gunicorn_conf.py runs it (WORKERS workers, 2 by default).
# Fails when any request errs; writes the figures to bench/results/reliability/load.json.
#   bench/load.sh [MODEL]          (make load)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/chatbot_model.h5}
PY=${PY:-.venv/bin/python}
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-16}
WORKERS=${WORKERS:-2}
OUT=bench/results/reliability/load.json
LOG=$(mktemp)
RESULTS=$(mktemp)
trap 'rm -f "$LOG" "$RESULTS"' EXIT

# tests/harness.py starts it in its own process group with the rate limiter off (one client sends
# thousands of requests a second here, on purpose), waits for /readyz and prints "PID URL".
STARTED=$($PY -m tests.harness start-gunicorn --model "$MODEL" --workers "$WORKERS" --log "$LOG")
read -r SERVER URL <<<"$STARTED"
trap '$PY -m tests.harness stop "$SERVER"; rm -f "$LOG" "$RESULTS"' EXIT

export WRK_SUMMARY_LUA=bench/wrk_summary.lua
for endpoint in predict chat; do
  script=bench/wrk_$endpoint.lua
  echo "wrk: $endpoint, ${DURATION}s at $CONNECTIONS connections" >&2
  line=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$URL/predict" | grep '^JSON ')
  echo "$endpoint ${line#JSON }" >>"$RESULTS"
done

$PY - "$RESULTS" "$OUT" "$DURATION" "$CONNECTIONS" "$WORKERS" <<'PYTHON'
"""Collect the wrk summaries, write them as JSON and fail on any error."""
import json
import sys
import time
from pathlib import Path

results, out, duration, connections, workers = sys.argv[1:]
endpoints = {}
for line in Path(results).read_text().splitlines():
    name, summary = line.split(" ", 1)
    endpoints[name] = json.loads(summary)
figures = {
    "command": "make load (bench/load.sh)",
    "duration_s": int(duration),
    "connections": int(connections),
    "workers": int(workers),
    "endpoints": {
        name: {
            "requests": s["requests"],
            "requests_per_s": round(s["requests_per_s"]),
            "p50_ms": round(s["latency_p50_us"] / 1000, 2),
            "p99_ms": round(s["latency_p99_us"] / 1000, 2),
            "errors": sum(s[key] for key in s if key.startswith("errors_")),
        }
        for name, s in endpoints.items()
    },
    "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
}
Path(out).parent.mkdir(parents=True, exist_ok=True)
Path(out).write_text(json.dumps(figures, indent=2) + "\n")
for name, e in figures["endpoints"].items():
    print(f"{name}: {e['requests_per_s']} req/s, p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, {e['errors']} errors")
sys.exit(1 if any(e["errors"] for e in figures["endpoints"].values()) else 0)
PYTHON
