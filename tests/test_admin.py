"""POST /admin/reload in one process: the token, a good bundle swapped in, a bad one refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app import create_app
from chatbot.classifier.bundle import Bundle

TOKEN = "test-admin-token-0123456789"


@pytest.fixture
def model_path(tmp_path: Path, tiny_model_path: Path) -> Path:
    """Return a bundle file of this test's own, which the test may replace."""
    return Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))


@pytest.fixture
def admin_client(model_path: Path):
    """Return a test client of an app serving the bundle at model_path, with an admin token."""
    return create_app({"TESTING": True, "MODEL_PATH": str(model_path), "ADMIN_TOKEN": TOKEN}).test_client()


def reload(client, token: str = TOKEN):
    return client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})


def served(client) -> str:
    return client.get("/version").get_json()["model"]["fingerprint"]


def test_reload_is_disabled_without_a_token(client) -> None:
    response = reload(client)
    assert response.status_code == 404
    assert response.get_json()["error"]["message"] == "admin endpoints are disabled: set CHATBOT_ADMIN_TOKEN"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Basic {TOKEN}",
        "Bearer",
        "Bearer wrong-token-0123456789",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
    ],
)
def test_reload_needs_the_bearer_token(admin_client, tiny_bundle: Bundle, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = admin_client.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="chatbot admin"'
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert served(admin_client) == tiny_bundle.fingerprint


def test_reload_serves_the_new_bundle(admin_client, model_path: Path, tiny_bundle, retrained_bundle) -> None:
    assert served(admin_client) == tiny_bundle.fingerprint
    retrained_bundle.save(model_path)
    response = reload(admin_client)
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "reloaded",
        "model": {
            "fingerprint": retrained_bundle.fingerprint,
            "previous": tiny_bundle.fingerprint,
            "trained_at": retrained_bundle.created_at,
        },
        "conversations": {
            "kept": True,
            "reason": "conversations are kept: this process serves the new model",
        },
    }
    assert served(admin_client) == retrained_bundle.fingerprint
    assert "chatbot_model_info{" in admin_client.get("/metrics").get_data(as_text=True)
    assert f'fingerprint="{retrained_bundle.fingerprint}"' in admin_client.get("/metrics").get_data(
        as_text=True
    )
    reply = admin_client.post("/api/v1/chat", json={"session_id": "s", "message": "hello"})
    assert reply.status_code == 200


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(b"not an HDF5 file"), "corrupt or truncated model file"),
        (lambda path: path.unlink(), "model file not found"),
        (lambda path: path.write_bytes(path.read_bytes()[:2000]), "corrupt or truncated model file"),
    ],
    ids=["garbage", "missing", "truncated"],
)
def test_a_bad_bundle_is_refused_and_the_old_one_keeps_serving(
    admin_client, model_path: Path, tiny_bundle: Bundle, damage, message: str
) -> None:
    damage(model_path)
    response = reload(admin_client)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_model"
    assert message in error["message"]
    assert str(model_path.parent) not in error["message"]  # the file's name only, no directories
    assert error["message"].endswith(f"; still serving model {tiny_bundle.fingerprint}")
    assert served(admin_client) == tiny_bundle.fingerprint
    assert admin_client.post("/predict", json={"data": "hello"}).get_data(as_text=True) in {
        "Hello!",
        "Hi there.",
    }


def test_under_gunicorn_the_reload_asks_for_fresh_workers(
    admin_client, model_path: Path, retrained_bundle
) -> None:
    calls = []
    admin_client.application.extensions["chatbot"].restart_workers = lambda: calls.append("HUP")
    retrained_bundle.save(model_path)
    response = reload(admin_client)
    assert (response.status_code, response.get_json()["status"], calls) == (
        202,
        "restarting_workers",
        ["HUP"],
    )
    assert served(admin_client) == retrained_bundle.fingerprint
