"""Benchmark ``POST /predict`` over HTTP: our app against a hello-world Flask app, same gunicorn settings.

Run from the repository root::

    .venv/bin/python -m bench.throughput [--model PATH [--target-ratio R]]... [--rounds 3] \
        [--duration 10] [--connections 8] [--threads 2] [--workers 2] \
        [--worker-class gevent|gthread] [--worker-threads 4]

Each round starts a fresh gunicorn for each app (hello-world and every model given), one app at a
time (the order rotates between rounds), measures the time from start to the first 200 answer,
warms it up, reads the total PSS of the master and its workers, loads it with wrk (closed loop:
its maximum rate), reads the PSS again (the figure held to its target), then offers half that
maximum at a fixed rate with bench/open_loop.py (its p99 latency), reads the PSS a third time (a
server that falls behind holds a connection per waiting request) and stops it. The medians are printed as a markdown table with each
figure beside its target; the raw rounds go to bench/results/throughput-<worker class>.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import open_loop
from bench.machine import describe_machine
from bench.messages import pattern_words
from chatbot.classifier.bundle import Bundle
from tests.harness import GUNICORN_CONF, ROOT, Gunicorn, memory_kib, process_tree

BENCH_DIR = Path(__file__).resolve().parent

REPO = ROOT
# The original curl body, the same every time, and a new message of known words every time.
WRK_SCRIPTS = {"repeated": BENCH_DIR / "wrk_predict.lua", "varied": BENCH_DIR / "wrk_varied.lua"}
WRK_SUMMARY = BENCH_DIR / "wrk_summary.lua"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_MODEL = REPO / "models" / "chatbot_model.h5"
# Issue 20's targets for the whole server (each model's ratio to hello is its own --target-ratio).
TARGET_PSS_MIB = 400.0  # master + 2 workers after load
TARGET_START_S = 3.0  # gunicorn's exec to the first answered /predict
TARGET_P99_MS = 50.0  # at half the measured maximum rate, offered at a fixed rate
OPEN_LOOP_SHARE = 0.5  # of the maximum rate wrk measured in the same run

BODY = '{"data":"What\'s%20up?"}'
HEADERS = {"Content-Type": "text/plain"}
POLL_INTERVAL_S = 0.01
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Target:
    """One app to benchmark: its name and the WSGI spec given to gunicorn (None: the config's)."""

    name: str
    wsgi: str | None


OURS = Target("ours", None)  # app/gunicorn_conf.py's wsgi_app = "app:create_app_or_exit()"
HELLO = Target("hello", "bench.hello_app:create_app()")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, action="append", help="trained .h5 bundle for our app (repeat for several)"
    )
    parser.add_argument(
        "--target-ratio",
        type=float,
        action="append",
        help="ours / hello with varied messages to print the result against, one per --model, in order",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs both apps")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load per app and round")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up before the PSS reading")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument("--worker-threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument(
        "--open-loop-duration", type=float, default=None, help="seconds at half the maximum rate (--duration)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the gunicorn logs and print where")
    parser.add_argument("--target-pss", type=float, default=TARGET_PSS_MIB, help="MiB of PSS after load")
    parser.add_argument(
        "--target-start", type=float, default=TARGET_START_S, help="seconds to the first answer"
    )
    parser.add_argument("--target-p99", type=float, default=TARGET_P99_MS, help="ms at half the maximum rate")
    args = parser.parse_args(argv)
    args.model = args.model or [DEFAULT_MODEL]
    args.target_ratio = args.target_ratio or []
    if len(args.target_ratio) > len(args.model):
        parser.error("give at most one --target-ratio per --model")
    if args.open_loop_duration is None:
        args.open_loop_duration = float(args.duration)
    for name in ("rounds", "duration", "warmup", "connections", "threads", "workers", "worker_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.threads > args.connections:
        parser.error("wrk needs --connections >= --threads")
    for model in args.model:
        if not model.is_file():
            parser.error(
                f"no model at {model}: train one with "
                "`.venv/bin/python -m chatbot train --out models/chatbot_model.h5`"
            )
    return args


def find_wrk() -> str:
    """Return the path of wrk, or exit saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit("bench/throughput.py needs wrk on PATH: install it with `apt-get install -y wrk`")
    return path


def start_server(
    target: Target,
    args: argparse.Namespace,
    log_dir: Path,
    tag: str,
    env: dict[str, str] | None = None,
    model: Path | None = None,
) -> Gunicorn:
    """Start gunicorn for one app on a free port, its access and error logs going to files.

    Ours and the hello app get the same environment; a WSGI spec overrides the config's wsgi_app.
    """
    worker_class = {
        "CHATBOT_WORKER_CLASS": getattr(args, "worker_class", "gevent"),
        "CHATBOT_THREADS": str(getattr(args, "worker_threads", 4)),
    }
    return Gunicorn(
        model or args.model,
        {"PYTHONUNBUFFERED": "1", **worker_class, **(env or {})},
        target.wsgi,
        workers=args.workers,
        log_path=log_dir / f"{tag}.access.log",
        error_log_path=log_dir / f"{tag}.error.log",
    ).launch()


def wait_first_200(server: Gunicorn) -> tuple[float, str]:
    """Poll POST /predict every 10 ms; return the seconds from Popen to the first 200 and its body."""
    deadline = server.started_at + START_TIMEOUT_S
    last = "no answer"
    while time.perf_counter() < deadline:
        server.check_running()
        try:
            answer = requests.post(f"{server.url}/predict", data=BODY, headers=HEADERS, timeout=5)
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            if answer.status_code == 200:
                return time.perf_counter() - server.started_at, answer.text
            last = f"HTTP {answer.status_code}"
        time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"no 200 from {server.url}/predict in {START_TIMEOUT_S:.0f} s (last: {last})")


def server_pss(master: int) -> dict[str, Any]:
    """Return the total PSS (MiB) of a master and its workers, and how many processes that is."""
    tree = process_tree(master)
    return {"pss_mib": round(sum(memory_kib(pid) for pid in tree) / 1024, 1), "processes": len(tree)}


def run_wrk(
    wrk: str, url: str, args: argparse.Namespace, duration: int, mode: str, words: Path
) -> dict[str, Any]:
    """Run wrk with the mode's script and return the numbers of its JSON line."""
    command = [
        *(wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s"),
        *("-s", str(WRK_SCRIPTS[mode]), url, "--", str(words), str(args.threads)),
    ]
    env = {**os.environ, "WRK_SUMMARY_LUA": str(WRK_SUMMARY)}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk_output(done.stdout)


def parse_wrk_output(stdout: str) -> dict[str, Any]:
    """Return the JSON object that wrk_predict.lua's done() printed after "JSON "."""
    for line in stdout.splitlines():
        if line.startswith("JSON "):
            result = json.loads(line[len("JSON ") :])
            result["errors_total"] = sum(value for key, value in result.items() if key.startswith("errors_"))
            return result
    raise RuntimeError(f"no JSON line in the wrk output:\n{stdout}")


def scan_logs(server: Gunicorn) -> dict[str, Any]:
    """Count worker boots, problems in the error log and statuses in the access log."""
    error_lines = server.error_log_path.read_text(errors="replace").splitlines()
    problems = [
        line
        for line in error_lines
        if re.search(r"\[(ERROR|CRITICAL|WARNING)\]|WORKER TIMEOUT|Traceback|was sent", line)
    ]
    statuses = Counter(
        match.group(1) for match in re.finditer(r'" (\d{3}) ', server.log_path.read_text(errors="replace"))
    )
    return {
        "worker_boots": sum("Booting worker" in line for line in error_lines),
        "problem_lines": problems[:20],
        "access_log_statuses": dict(sorted(statuses.items())),  # whole life: polls, warm-up, load
    }


@dataclass(frozen=True)
class App:
    """One app of a run: its name in the tables, what gunicorn serves and the bundle it loads."""

    name: str
    target: Target
    model: Path  # hello ignores it; its words make the varied messages
    target_ratio: float | None = None  # ours / hello with varied messages


def apps_of(args: argparse.Namespace) -> list[App]:
    """Return hello-world and one app per --model, named by the model's file name."""
    apps = [App(HELLO.name, HELLO, args.model[0])]
    for index, model in enumerate(args.model):
        ratio = args.target_ratio[index] if index < len(args.target_ratio) else None
        apps.append(App(model.stem, OURS, model, ratio))
    return apps


def bench_once(app: App, args: argparse.Namespace, wrk: str, log_dir: Path, tag: str) -> dict[str, Any]:
    """Start one app, measure its start, memory, throughput (each message mode) and its latency at
    half its maximum rate, and stop it."""
    words = words_path(log_dir, app.model)
    server = start_server(app.target, args, log_dir, tag, model=app.model)
    url = f"{server.url}/predict"
    try:
        start_s, first_answer = wait_first_200(server)
        warmup = run_wrk(wrk, url, args, args.warmup, "repeated", words)
        pss_warm = server_pss(server.pid)
        load = {mode: run_wrk(wrk, url, args, args.duration, mode, words) for mode in WRK_SCRIPTS}
        pss_load = server_pss(server.pid)
        rate = OPEN_LOOP_SHARE * load["varied"]["requests_per_s"]
        fixed_rate = open_loop.run(url, rate, args.open_loop_duration, read_words(words), seed=len(tag))
        # A server that falls behind the fixed rate holds one connection per waiting request.
        pss_fixed_rate = server_pss(server.pid)
    finally:
        exit_code = server.stop()
    return {
        "app": app.name,
        "model": str(app.model),
        "port": server.port,
        "start_to_first_200_s": round(start_s, 4),
        "first_answer": first_answer,
        "warmup": warmup,
        "pss_after_warmup": pss_warm,
        "load": load,
        "fixed_rate": fixed_rate,
        "pss_after_load": pss_load,
        "pss_after_fixed_rate": pss_fixed_rate,
        "exit_code": exit_code,
        "logs": scan_logs(server),
        "load_average": os.getloadavg(),
    }


def run_rounds(args: argparse.Namespace, wrk: str, log_dir: Path) -> list[dict[str, Any]]:
    """Run every round, every app each, rotating which goes first."""
    apps = apps_of(args)
    rounds = []
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(apps)
        order = apps[shift:] + apps[:shift]
        results = {}
        for app in order:
            print(f"round {number}/{args.rounds}: {app.name} ...", file=sys.stderr, flush=True)
            results[app.name] = bench_once(app, args, wrk, log_dir, f"r{number}-{app.name}")
            print(f"  {brief(results[app.name])}", file=sys.stderr, flush=True)
        rounds.append({"round": number, "order": [app.name for app in order], "results": results})
    return rounds


def brief(result: dict[str, Any]) -> str:
    """Return a one-line progress note for one run."""
    load = result["load"]["varied"]
    fixed = result["fixed_rate"]
    return (
        f"varied {load['requests_per_s']:.0f} req/s, at {fixed['offered_per_s']:.0f}/s fixed: "
        f"p50 {fixed['latency_p50_ms']:.2f} ms, p99 {fixed['latency_p99_ms']:.2f} ms; "
        f"start {result['start_to_first_200_s']:.2f} s, PSS {result['pss_after_load']['pss_mib']} MiB, "
        f"errors {load['errors_total']}, load average {result['load_average'][0]:.2f}"
    )


def summarise(rounds: list[dict[str, Any]], app: str) -> dict[str, Any]:
    """Return the medians over the rounds of one app (errors and worker boots are summed)."""
    runs = [one["results"][app] for one in rounds]

    def median(get: Any) -> float:
        return statistics.median(get(run) for run in runs)

    summary: dict[str, Any] = {}
    for mode in WRK_SCRIPTS:
        loads = [run["load"][mode] for run in runs]
        summary[f"{mode}_requests_per_s"] = statistics.median(load["requests_per_s"] for load in loads)
        summary[f"{mode}_latency_p50_ms"] = statistics.median(load["latency_p50_us"] / 1000 for load in loads)
        summary[f"{mode}_latency_p99_ms"] = statistics.median(load["latency_p99_us"] / 1000 for load in loads)
    for key in (
        "offered_per_s",
        "answered_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "send_lateness_p99_ms",
        "latency_from_send_p99_ms",
    ):
        summary[f"fixed_rate_{key}"] = median(lambda run, key=key: run["fixed_rate"][key])
    return {
        **summary,
        "start_to_first_200_s": median(lambda run: run["start_to_first_200_s"]),
        "pss_after_warmup_mib": median(lambda run: run["pss_after_warmup"]["pss_mib"]),
        "pss_after_load_mib": median(lambda run: run["pss_after_load"]["pss_mib"]),
        "pss_after_fixed_rate_mib": median(lambda run: run["pss_after_fixed_rate"]["pss_mib"]),
        "errors": sum(run["load"][mode]["errors_total"] for run in runs for mode in WRK_SCRIPTS),
        "fixed_rate_failures": sum(
            sum(run["fixed_rate"]["errors"].values())
            + run["fixed_rate"]["requests"]
            - run["fixed_rate"]["answered"]
            for run in runs
        ),
        "worker_boots": sum(run["logs"]["worker_boots"] for run in runs),
        "load_average": median(lambda run: run["load_average"][0]),
    }


def ratios(ours: dict[str, Any], hello: dict[str, Any]) -> dict[str, float]:
    """Return ours/hello for throughput in each message mode and for start time."""
    return {
        **{
            f"{mode}_requests_per_s": round(
                ours[f"{mode}_requests_per_s"] / hello[f"{mode}_requests_per_s"], 3
            )
            for mode in WRK_SCRIPTS
        },
        "start_to_first_200_s": round(ours["start_to_first_200_s"] / hello["start_to_first_200_s"], 3),
    }


def markdown_table(medians: dict[str, dict[str, Any]], ratio: dict[str, dict[str, float]]) -> str:
    """Format the medians and each app's ratios to hello as a markdown table."""
    lines = [
        "| app | req/s, repeated message | p50 / p99 (ms) | req/s, varied messages | p50 / p99 (ms) "
        "| ours / hello, repeated / varied | fixed rate: offered, p50 / p99 (ms), p99 from the send "
        "| start to first 200 (s) | PSS warm / after wrk / after fixed rate (MiB) | errors | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for app, row in medians.items():
        ratio_cell = (
            f"**{ratio[app]['repeated_requests_per_s']:.2f} / {ratio[app]['varied_requests_per_s']:.2f}**"
            if app in ratio
            else "1 / 1"
        )
        lines.append(
            f"| {app} | {row['repeated_requests_per_s']:.0f} "
            f"| {row['repeated_latency_p50_ms']:.2f} / {row['repeated_latency_p99_ms']:.2f} "
            f"| {row['varied_requests_per_s']:.0f} "
            f"| {row['varied_latency_p50_ms']:.2f} / {row['varied_latency_p99_ms']:.2f} "
            f"| {ratio_cell} "
            f"| {row['fixed_rate_offered_per_s']:.0f}/s, {row['fixed_rate_latency_p50_ms']:.2f} / "
            f"{row['fixed_rate_latency_p99_ms']:.2f}, {row['fixed_rate_latency_from_send_p99_ms']:.2f} "
            f"| {row['start_to_first_200_s']:.3f} "
            f"| {row['pss_after_warmup_mib']:.1f} / {row['pss_after_load_mib']:.1f} / "
            f"{row['pss_after_fixed_rate_mib']:.1f} "
            f"| {row['errors'] + row['fixed_rate_failures']} | {row['load_average']:.2f} |"
        )
    return "\n".join(lines)


def machine_info(wrk: str) -> dict[str, Any]:
    """Describe the machine, the software and the code being measured."""
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return {
        **describe_machine(),
        "load_average_at_start": os.getloadavg(),
        "gunicorn": importlib.metadata.version("gunicorn"),
        "flask": importlib.metadata.version("flask"),
        "wrk": (wrk_version.stdout or wrk_version.stderr).partition("\n")[0],
    }


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Record the benchmark's settings and the environment the servers inherit."""
    return {
        "models": [str(model.resolve()) for model in args.model],
        "target_ratios": args.target_ratio,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "open_loop_duration_s": args.open_loop_duration,
        "open_loop_share_of_maximum": OPEN_LOOP_SHARE,
        "wrk_threads": args.threads,
        "wrk_connections": args.connections,
        "gunicorn_workers": args.workers,
        "worker_class": args.worker_class,
        "worker_threads": args.worker_threads if args.worker_class == "gthread" else None,
        "gunicorn_conf": str(GUNICORN_CONF.relative_to(REPO)),
        "hello_wsgi": HELLO.wsgi,
        "inherited_chatbot_env": {
            key: value for key, value in os.environ.items() if key.startswith("CHATBOT_")
        },
        "body": BODY,
    }


def results_path(args: argparse.Namespace) -> Path:
    """Return where a run's report goes: one file per worker class."""
    return RESULTS_DIR / f"throughput-{args.worker_class}.json"


def write_results(report: dict[str, Any], path: Path) -> None:
    """Write the report to bench/results/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def verdict(met: bool) -> str:
    """Return how a figure stands against its target."""
    return "met" if met else "NOT met"


def target_lines(
    apps: list[App],
    medians: dict[str, dict[str, Any]],
    ratio: dict[str, dict[str, float]],
    args: argparse.Namespace,
) -> list[str]:
    """Return each of our apps' figures beside their targets, met or not."""
    lines = []
    for app in apps:
        if app.target is HELLO:
            continue
        row = medians[app.name]
        if app.target_ratio is not None:
            got = ratio[app.name]["varied_requests_per_s"]
            lines.append(
                f"{app.name}: ours / hello, varied messages {got:.2f} "
                f"(target >= {app.target_ratio:.2f}: {verdict(got >= app.target_ratio)})"
            )
        pss, start, p99 = (
            row["pss_after_load_mib"],
            row["start_to_first_200_s"],
            row["fixed_rate_latency_p99_ms"],
        )
        lines.append(
            f"{app.name}: PSS of master + {args.workers} workers after wrk's load {pss:.0f} MiB "
            f"(target <= {args.target_pss:.0f}: {verdict(pss <= args.target_pss)}); "
            f"start to first answer {start:.2f} s (target <= {args.target_start:.1f}: "
            f"{verdict(start <= args.target_start)}); p99 at {row['fixed_rate_offered_per_s']:.0f}/s fixed "
            f"(half its maximum) {p99:.1f} ms (target <= {args.target_p99:.0f}: {verdict(p99 <= args.target_p99)}; "
            f"from the send {row['fixed_rate_latency_from_send_p99_ms']:.1f} ms, the generator late by up to "
            f"{row['fixed_rate_send_lateness_p99_ms']:.1f} ms at p99)"
        )
    return lines


def write_words(model: Path, path: Path) -> None:
    """Write the words of the bot's patterns, one a line, for the varied-messages wrk script."""
    path.write_text("\n".join(pattern_words(Bundle.load(model))) + "\n")


def words_path(log_dir: Path, model: Path) -> Path:
    """Return the words file of a model (written once per run)."""
    path = log_dir / f"words-{model.stem}.txt"
    if not path.exists():
        write_words(model, path)
    return path


def read_words(path: Path) -> list[str]:
    """Return the words of a words file."""
    return path.read_text().split()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write the JSON report."""
    args = parse_args(argv)
    wrk = find_wrk()
    machine = machine_info(wrk)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    apps = apps_of(args)
    try:
        rounds = run_rounds(args, wrk, log_dir)
    finally:
        if args.keep_logs:
            print(f"gunicorn logs: {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    medians = {app.name: summarise(rounds, app.name) for app in apps}
    ratio = {
        app.name: ratios(medians[app.name], medians[HELLO.name]) for app in apps if app.target is not HELLO
    }
    path = results_path(args)
    write_results(
        {
            "settings": settings(args),
            "machine": machine,
            "rounds": rounds,
            "medians": medians,
            "ratios": ratio,
        },
        path,
    )
    workers = f"{args.workers} {args.worker_class} workers"
    if args.worker_class == "gthread":
        workers += f" x {args.worker_threads} threads"
    print(f"gunicorn: {workers}; load average at start {machine['load_average_at_start'][0]:.2f}")
    print(markdown_table(medians, ratio))
    for line in target_lines(apps, medians, ratio, args):
        print(line)
    print(f"\nraw rounds: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
