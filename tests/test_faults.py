"""Faults, on real processes: a worker killed under load, bad bundles at start, a save killed
midway, a full disk, a slow client. A bad bundle on reload is covered by tests/test_reload.py and
tests/test_admin.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import requests

from bench.slow_clients import STALLS  # one byte; headers cut short; headers and half a body
from chatbot.classifier.bundle import Bundle
from chatbot.errors import BundleError
from tests.harness import free_port, gunicorn_command, wait_until
from tests.support import ROOT, Load, record_figures, rewrite_metadata

pytestmark = pytest.mark.slow

HEALTHY_WITHIN_S = 2.0


def test_a_worker_killed_under_load_is_replaced_and_only_requests_in_flight_fail(
    serve, tiny_model_path: Path
) -> None:
    server = serve(tiny_model_path, {"WEB_CONCURRENCY": "2"})
    wait_until(lambda: len(server.worker_pids()) == 2)
    with Load(server.url, clients=8) as load:
        wait_until(lambda: len(load.attempts) >= 200)
        victim = max(server.worker_pids())
        before_kill = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        after_kill = time.monotonic()

        def replaced() -> bool:
            """gunicorn runs 2 workers again, the killed one not among them, and /readyz answers"""
            workers = server.worker_pids()
            return len(workers) == 2 and victim not in workers and server.get("/readyz").status_code == 200

        wait_until(replaced, timeout=10, interval=0.01)
        healthy_after = time.monotonic() - before_kill
        wait_until(lambda: load.count_after(before_kill + healthy_after) >= 200)
    failed = [attempt for attempt in load.attempts if not attempt.ok]
    in_flight = [a for a in load.attempts if a.started <= after_kill and a.ended >= before_kill]
    assert all(attempt in in_flight for attempt in failed), "a request failed that was not in flight"
    assert len(failed) <= len(in_flight)
    assert healthy_after < HEALTHY_WITHIN_S
    record_figures(
        "worker_kill",
        {
            "requests": len(load.attempts),
            "failed": len(failed),
            "in_flight": len(in_flight),
            "healthy_after_s": round(healthy_after, 3),
        },
    )


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:3000])


def flip_weight_bytes(path: Path) -> None:
    """Flip bytes inside the largest weight array: its data, not HDF5's structure."""
    with h5py.File(path, "r") as file:
        datasets: list[h5py.Dataset] = []
        file["model_weights"].visititems(
            lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None
        )
        offset = max(datasets, key=lambda dataset: dataset.size).id.get_offset()
    data = bytearray(path.read_bytes())
    data[offset + 8 : offset + 16] = bytes(b ^ 0xFF for b in data[offset + 8 : offset + 16])
    path.write_bytes(bytes(data))


def drop_a_label(path: Path) -> None:
    """Make the labels no longer match the output layer, checksum and all."""
    rewrite_metadata(path, lambda metadata: metadata["labels"].pop())


def edit_architecture(path: Path) -> None:
    """Replace the architecture with JSON of another shape, leaving the checksum stale."""
    with h5py.File(path, "r+") as file:
        file.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {}})


def set_a_bad_threshold(path: Path) -> None:
    """Store a threshold that is not a number, checksum and all."""
    rewrite_metadata(path, lambda metadata: metadata["config"].update(threshold="x"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncate, "corrupt or truncated model file"),
        (flip_weight_bytes, "weights do not match their fingerprint; the file is corrupt"),
        (drop_a_label, "labels but the output layer has"),
        (edit_architecture, "metadata or architecture do not match their checksum"),
        (set_a_bad_threshold, "invalid bundle metadata (config threshold='x' must be float)"),
    ],
    ids=["truncated", "corrupt", "mismatched", "edited", "invalid"],
)
@pytest.mark.parametrize("command", ["gunicorn", "chatbot serve"])
def test_a_bad_bundle_stops_the_start_with_one_clear_line(
    tmp_path: Path, tiny_model_path: Path, damage, message: str, command: str
) -> None:
    model = tmp_path / "model.h5"
    model.write_bytes(tiny_model_path.read_bytes())
    damage(model)
    argv = {
        "gunicorn": gunicorn_command(),
        "chatbot serve": [sys.executable, "-m", "chatbot", "serve", "--model", str(model)],
    }[command]
    temporary = tmp_path / "tmp"  # where app/gunicorn_conf.py makes its metrics directory
    temporary.mkdir()
    env = {
        **os.environ,
        "CHATBOT_MODEL": str(model),
        "PORT": str(free_port()),
        "HOST": "127.0.0.1",
        "TMPDIR": str(temporary),
    }
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {model}: ") and message in last_line
    assert list(temporary.glob("chatbot-metrics-*")) == []  # a failed start cleans up after itself
    record_figures(
        f"bad_bundle_{damage.__name__}_{command.replace(' ', '_')}",
        {
            "command": command,
            "exit_status": result.returncode,
            "message": last_line.replace(str(model), "model.h5"),
        },
    )


SAVE_FOREVER = """
import sys
from chatbot.classifier.bundle import Bundle

bundles = [Bundle.load(sys.argv[1]), Bundle.load(sys.argv[2])]
print("saving", flush=True)
while True:
    for bundle in bundles:
        bundle.save(sys.argv[3])
"""


def test_a_save_killed_at_random_moments_never_harms_the_previous_model(
    tmp_path: Path, tiny_model_path: Path, tiny_bundle: Bundle, retrained_bundle: Bundle
) -> None:
    other = retrained_bundle.save(tmp_path / "other" / "model.h5")
    target = tiny_bundle.save(tmp_path / "served" / "model.h5")
    expected = {tiny_bundle.fingerprint, retrained_bundle.fingerprint}
    kills, killed_mid_save, rng = 12, 0, random.Random()
    for _ in range(kills):
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVE_FOREVER, str(tiny_model_path), str(other), str(target)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert saver.stdout.readline() == "saving\n"
        time.sleep(rng.uniform(0.0, 0.2))  # a random moment in the save loop
        saver.kill()
        saver.wait()
        saver.stdout.close()
        leftovers = list(target.parent.glob(".model.h5.*.tmp"))
        killed_mid_save += bool(leftovers)
        assert Bundle.load(target).fingerprint in expected  # the file in place is whole, old or new
    tiny_bundle.save(target)  # the next save clears what killed saves left behind
    assert sorted(path.name for path in target.parent.iterdir()) == ["model.h5"]
    assert killed_mid_save > 0, "no kill landed while a file was being written"
    record_figures("save_killed", {"kills": kills, "mid_write": killed_mid_save, "intact": kills})


@pytest.fixture
def small_disk(tmp_path: Path):
    """Mount a 2 MiB tmpfs (needs root); skip without it, except under CI."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        message = f"cannot mount a small tmpfs: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_gives_a_clear_error_and_leaves_no_partial_file(
    small_disk: Path, tiny_bundle: Bundle, retrained_bundle: Bundle
) -> None:
    target = tiny_bundle.save(small_disk / "model.h5")
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as file:  # fill what is left but a little
        file.write(bytes(os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 16 * 1024))
    with pytest.raises(BundleError) as error:
        retrained_bundle.save(target)
    message = str(error.value)
    assert (
        message
        == f"{target}: cannot write the model file (No space left on device); the previous file is unchanged"
    )
    assert sorted(path.name for path in small_disk.iterdir()) == ["filler", "model.h5"]
    assert Bundle.load(target).fingerprint == tiny_bundle.fingerprint
    record_figures("disk_full", {"message": message.replace(str(small_disk), "DISK")})


def test_a_slow_upload_does_not_hold_up_other_requests(serve, tiny_model_path: Path) -> None:
    server = serve(tiny_model_path)  # the default: 1 gevent worker
    body = json.dumps({"data": "hello there, slowly"}).encode()
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    slow.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    slow.sendall(body[:1])
    latencies = []
    sent = 1
    while sent < len(body):  # one byte every 0.1 s: about 4 s for the body
        started = time.monotonic()
        response = requests.post(f"{server.url}/predict", json={"data": "hello"}, timeout=10)
        latencies.append(time.monotonic() - started)
        assert response.status_code == 200
        time.sleep(max(0.0, 0.1 - latencies[-1]))
        slow.sendall(body[sent : sent + 1])
        sent += 1
    answer = b""
    while chunk := slow.recv(4096):
        answer += chunk
    slow.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert max(latencies) < 1.0
    record_figures(
        "slow_client",
        {
            "upload_seconds": round(0.1 * len(body), 1),
            "other_requests": len(latencies),
            "max_latency_ms": round(1000 * max(latencies), 1),
        },
    )


STALLED_CONNECTIONS = 256


def test_stalled_connections_leave_the_default_server_answering(serve, tiny_model_path: Path) -> None:
    """Issue 13, finding 1: four stalled sockets froze the default server (bench/slow_clients.py
    measures the rate of ordinary traffic meanwhile)."""
    server = serve(tiny_model_path)  # the default: 1 worker
    stalled = []
    try:
        for index in range(STALLED_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            connection.sendall(STALLS[index % len(STALLS)])
            stalled.append(connection)
        latencies = []
        for number in range(20):
            started = time.monotonic()
            if number % 2:
                response = server.get("/healthz", timeout=5)
            else:
                response = server.post("/predict", {"data": f"hello number {number}"}, timeout=5)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200
    finally:
        for connection in stalled:
            connection.close()
    assert max(latencies) < 1.0
    record_figures(
        "stalled_connections",
        {
            "stalled": STALLED_CONNECTIONS,
            "answered": len(latencies),
            "max_latency_ms": round(1000 * max(latencies), 1),
        },
    )
