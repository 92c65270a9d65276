"""Model reload under real gunicorn: POST /admin/reload and SIGHUP reach every worker, a bad bundle
leaves the old model serving, and answers keep coming meanwhile."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import h5py
import pytest
import requests

from chatbot.classifier.bundle import Bundle
from tests.harness import wait_until
from tests.support import Load, record_figures, rewrite_metadata

pytestmark = pytest.mark.slow

TOKEN = "reload-test-token-0123456789"
WORKERS = 2


def test_admin_reload_and_sighup_reach_every_worker(
    serve, tmp_path: Path, tiny_model_path: Path, tiny_bundle: Bundle, retrained_bundle: Bundle
) -> None:
    model_path = Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))
    server = serve(model_path, {"WEB_CONCURRENCY": str(WORKERS), "CHATBOT_ADMIN_TOKEN": TOKEN})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wait_until(lambda: server.serves_on_every_worker(tiny_bundle.fingerprint, WORKERS))

    # POST /admin/reload lands on one worker, which asks the master to replace them all.
    retrained_bundle.save(model_path)
    before = server.worker_pids()
    with Load(server.url, clients=1) as load:
        response = requests.post(f"{server.url}/admin/reload", headers=auth, timeout=10)
        assert response.status_code == 202
        assert response.json()["model"]["fingerprint"] == retrained_bundle.fingerprint
        wait_until(lambda: server.serves_on_every_worker(retrained_bundle.fingerprint, WORKERS, before))
    assert load.attempts and all(attempt.ok for attempt in load.attempts)  # no downtime meanwhile

    # A bad bundle is refused by the endpoint; the workers stay as they are.
    model_path.write_bytes(b"garbage")
    before = server.worker_pids()
    response = requests.post(f"{server.url}/admin/reload", headers=auth, timeout=10)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_model"
    assert server.worker_pids() == before
    assert server.serves_on_every_worker(retrained_bundle.fingerprint, WORKERS)

    # SIGHUP to the master: the new model is loaded there, then fresh workers are forked.
    tiny_bundle.save(model_path)
    before = server.worker_pids()
    os.kill(server.process.pid, signal.SIGHUP)
    wait_until(lambda: server.serves_on_every_worker(tiny_bundle.fingerprint, WORKERS, before))

    # SIGHUP with a bad bundle: the workers are replaced, and serve the old model.
    model_path.write_bytes(b"garbage")
    before = server.worker_pids()
    os.kill(server.process.pid, signal.SIGHUP)
    wait_until(lambda: server.serves_on_every_worker(tiny_bundle.fingerprint, WORKERS, before))
    assert "model reload refused, still serving the old model" in server.log_so_far()
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert f'chatbot_model_info{{app_version="0.1.0",fingerprint="{tiny_bundle.fingerprint}"' in metrics
    assert "model reloaded: serving" in server.log_so_far()


def test_a_bundle_that_loads_badly_is_refused_and_the_old_model_keeps_answering(
    serve, tmp_path: Path, tiny_model_path: Path, tiny_bundle: Bundle
) -> None:
    """Findings 2 and 7 of issue 13: no bad file, whatever is wrong with it, stops the answers."""
    model_path = Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))
    server = serve(model_path, {"CHATBOT_ADMIN_TOKEN": TOKEN})
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def still_answering() -> None:
        chat = server.post("/api/v1/chat", {"message": "hello"})
        assert chat.status_code == 200 and chat.json()["intent"]["name"] == "greeting"
        assert server.get("/readyz").json()["model"] == tiny_bundle.fingerprint

    # Bundles that load but cannot answer: a setting or an intent that training data may not have.
    edits = (
        lambda metadata: metadata["config"].update(threshold="x"),
        lambda metadata: metadata["config"].update(max_length=10**9),
        lambda metadata: metadata["intents"][0].update(responses=[]),
    )
    for edit in edits:
        rewrite_metadata(Path(shutil.copy(tiny_model_path, model_path)), edit)
        response = requests.post(f"{server.url}/admin/reload", headers=auth, timeout=10)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_model"
        still_answering()

    # A file h5py reads but whose parts are not what a bundle holds, reloaded with SIGHUP: the
    # master survives, says why, and its fresh workers serve the old model.
    shutil.copy(tiny_model_path, model_path)
    with h5py.File(model_path, "r+") as file:
        file.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": {}})
    before = server.worker_pids()
    os.kill(server.process.pid, signal.SIGHUP)
    wait_until(lambda: server.worker_pids() and not server.worker_pids() & before)
    assert server.process.poll() is None
    assert "model reload refused, still serving the old model" in server.log_so_far()
    assert "Unhandled exception" not in server.log_so_far()
    wait_until(lambda: server.get("/readyz").status_code == 200)
    still_answering()
    record_figures("bad_reload", {"refused_422": len(edits), "sighup_master_alive": True})


def test_a_reload_says_whether_conversations_keep_their_context(
    serve, tmp_path: Path, tiny_model_path: Path, retrained_bundle: Bundle
) -> None:
    """Issue 13, finding 9: a reload silently lost in-memory conversations; now it says so and why."""
    model_path = Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))
    server = serve(model_path, {"CHATBOT_ADMIN_TOKEN": TOKEN})  # sessions in memory

    def asks_for_order_number(session: str) -> bool:
        return (
            server.post("/api/v1/chat", {"message": "where is my order", "session_id": session}).json()[
                "context"
            ]
            == "order_number"
        )

    def takes_order_number(session: str) -> bool:
        reply = server.post("/api/v1/chat", {"message": "the number is 42", "session_id": session}).json()
        return reply["intent"]["name"] == "order_number" and not reply["fallback"]

    assert asks_for_order_number("before") and takes_order_number("before")
    assert asks_for_order_number("across")
    retrained_bundle.save(model_path)
    before = server.worker_pids()
    response = requests.post(
        f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 202
    conversations = response.json()["conversations"]
    assert conversations["kept"] is False and "REDIS_URL" in conversations["reason"]
    wait_until(lambda: server.serves_on_every_worker(retrained_bundle.fingerprint, 1, before))
    assert not takes_order_number("across")  # as the response said
    assert "in-memory conversations start afresh" in server.log_so_far()
    record_figures("reload_conversations", {"store": "memory", "kept": conversations["kept"]})
