"""Prometheus metrics: in one process through the test client, and summed over gunicorn workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.ranker import Ranker
from tests.harness import wait_until
from tests.support import record_figures


def scrape(text: str) -> dict[tuple[str, frozenset], float]:
    """Parse an exposition into {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_predictions_and_fallbacks(client, tiny_bundle: Bundle) -> None:
    for _ in range(3):
        assert client.post("/predict", json={"data": "hello"}).status_code == 200
    client.post("/api/v1/parse", json={"texts": ["bye", "qwzx vvbn"]})
    client.post("/api/v1/chat", json={"message": "where is my order"})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = scrape(response.get_data(as_text=True))
    requests_total = "chatbot_http_requests_total"
    assert value(samples, requests_total, endpoint="/predict", method="POST", status="200") == 3
    assert value(samples, requests_total, endpoint="/api/v1/parse", method="POST", status="200") == 1
    assert value(samples, requests_total, endpoint="unmatched", method="GET", status="404") == 1
    assert value(samples, "chatbot_http_request_duration_seconds_count", endpoint="/predict") == 3
    assert value(samples, "chatbot_http_request_duration_seconds_bucket", endpoint="/predict", le="+Inf") == 3
    guess = Ranker.from_bundle(tiny_bundle).rank("qwzx vvbn").top[0]  # the gibberish counts under it
    assert value(samples, "chatbot_predictions_total", intent="greeting") == 3 + (guess == "greeting")
    assert value(samples, "chatbot_predictions_total", intent="order") == 1 + (guess == "order")
    predictions = [v for (name, _), v in samples.items() if name == "chatbot_predictions_total"]
    assert sum(predictions) == 6  # the gibberish counts under its best guess
    assert value(samples, "chatbot_fallbacks_total") == 1  # the gibberish
    model = {
        "fingerprint": tiny_bundle.fingerprint,
        "trained_at": tiny_bundle.created_at,
        "app_version": "0.1.0",
    }
    assert value(samples, "chatbot_model_info", **model) == 1


def test_apps_keep_their_own_metrics(app, client) -> None:
    from app import create_app

    client.post("/predict", json={"data": "hello"})
    other = create_app({"TESTING": True}, dialogue=app.extensions["chatbot"].dialogue).test_client()
    samples = scrape(other.get("/metrics").get_data(as_text=True))
    assert value(samples, "chatbot_predictions_total", intent="greeting") == 0


@pytest.mark.slow
def test_gunicorn_workers_add_up_and_a_new_start_counts_afresh(
    serve, tiny_model_path: Path, tmp_path
) -> None:
    env = {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    for _ in range(2):  # the second server reuses the directory: it must not count the first's requests
        server = serve(tiny_model_path, env)
        workers = wait_until(lambda server=server: len(server.worker_pids()) == 2 and server.worker_pids())
        for pid in workers:  # each worker answers half of the requests
            with server.only_worker(pid):
                for _ in range(15):
                    assert server.get("/version").json()["served_by"]["pid"] == pid
                    assert server.post("/predict", {"data": "hello"}).status_code == 200
        samples = scrape(requests.get(f"{server.url}/metrics", timeout=10).text)
        assert (
            value(samples, "chatbot_http_requests_total", endpoint="/predict", method="POST", status="200")
            == 30
        )
        assert value(samples, "chatbot_predictions_total", intent="greeting") == 30
        server.stop()
    assert list((tmp_path / "metrics").glob("*.db"))  # the directory given is used, and kept


@pytest.mark.slow
def test_made_up_methods_and_paths_fold_into_fixed_label_values(serve, tiny_model_path: Path) -> None:
    """Issue 13, finding 3: each made-up method was a new series that nothing ever freed."""
    server = serve(tiny_model_path)
    session = requests.Session()
    session.request("M0X", f"{server.url}/made/up/0", timeout=10)
    server.get("/metrics")
    before = len(server.get("/metrics").content)  # every series the next requests may touch
    for number in range(1, 500):
        session.request(f"M{number}X", f"{server.url}/made/up/{number}", timeout=10)
    exposition = server.get("/metrics").text
    samples = scrape(exposition)
    methods = {dict(labels)["method"] for name, labels in samples if name == "chatbot_http_requests_total"}
    assert methods <= {"GET", "POST", "other"}
    assert sum(count for (name, labels), count in samples.items() if ("method", "other") in labels) == 500
    assert len(exposition) - before < 100  # larger counts, no new series
    record_figures(
        "metrics_labels",
        {"requests": 500, "metrics_bytes_before": before, "metrics_bytes_after": len(exposition)},
    )


@pytest.mark.slow
def test_reloads_leave_no_metrics_files_behind_and_lose_no_counts(
    serve, tiny_model_path: Path, tmp_path: Path
) -> None:
    """Issue 13, finding 10: 30 SIGHUPs left 57 files, all read by every scrape."""
    directory = tmp_path / "metrics"
    server = serve(tiny_model_path, {"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    reloads = 8
    for _ in range(reloads):
        assert server.post("/predict", {"data": "hello"}).status_code == 200
        before = server.worker_pids()
        os.kill(server.process.pid, signal.SIGHUP)
        wait_until(lambda before=before: server.worker_pids() and not server.worker_pids() & before)
        wait_until(lambda: server.get("/healthz").status_code == 200)

    def files() -> list[str]:
        return sorted(path.name for path in directory.glob("*.db"))

    # The live worker's two files, the two archives and the master's (its unlabelled counter), once
    # the master has reaped the last worker.
    wait_until(lambda: len(files()) <= 5, timeout=5)
    samples = scrape(server.get("/metrics").text)
    assert (
        value(samples, "chatbot_http_requests_total", endpoint="/predict", method="POST", status="200")
        == reloads
    )
    record_figures("metrics_files", {"reloads": reloads, "files": len(files())})
