"""Security: no debug mode, no leaked internals, security headers, per-client rate limits.

An unexpected error in one process is covered by tests/test_api.py; here it is under gunicorn.
The admin token is covered by tests/test_admin.py; the reload's refusal of a bad bundle by
tests/test_admin.py and tests/test_reload.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis
import requests

from app import create_app
from app.config import app_settings
from app.security import DATA_POLICY
from tests.broken_app import SECRET
from tests.harness import wait_until
from tests.support import ROOT, RedisServer, record_figures

TOKEN = "security-test-token-0123456789"


def limited_app(dialogue, limit: str = "3/minute", **config):
    return create_app({"TESTING": True, "RATE_LIMIT": limit, **config}, dialogue=dialogue)


def test_debug_mode_cannot_be_switched_on(dialogue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_DEBUG", "1")
    assert app_settings({"FLASK_DEBUG": "1"})["DEBUG"] is False
    assert create_app(dialogue=dialogue).debug is False  # FLASK_DEBUG is ignored
    with pytest.raises(ValueError, match="debug mode is never allowed"):
        create_app({"DEBUG": True}, dialogue=dialogue)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/api/v1/parse", {"json": {"text": "hi"}}),
        ("post", "/predict", {"data": "{oops", "content_type": "text/plain"}),
        ("get", "/no/such/page", {}),
        ("get", "/static/widget.js", {}),
        ("get", "/healthz", {}),
    ],
)
def test_every_response_has_the_security_headers(client, method: str, path: str, kwargs) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Security-Policy"] == DATA_POLICY
    response.close()  # a static file's answer holds the file open


def test_the_page_may_be_framed_only_by_the_configured_sites(dialogue) -> None:
    default = create_app({"TESTING": True}, dialogue=dialogue).test_client().get("/")
    assert default.headers["Content-Security-Policy"].endswith("; frame-ancestors 'self'")
    assert "script-src 'self';" in default.headers["Content-Security-Policy"]
    framed = create_app(
        {"TESTING": True, **app_settings({"CHATBOT_FRAME_ANCESTORS": "'self' https://shop.example"})},
        dialogue=dialogue,
    )
    policy = framed.test_client().get("/").headers["Content-Security-Policy"]
    assert policy.endswith("; frame-ancestors 'self' https://shop.example")


@pytest.mark.parametrize("path", ["/admin/review", "/admin/review/inbox", "/admin/reload", "/admin/nowhere"])
def test_admin_pages_are_never_framed(dialogue, tmp_path, path: str) -> None:
    """Issue 21, item 14: the sites allowed to frame the chat page may not frame the admin pages."""
    settings = app_settings({"CHATBOT_FRAME_ANCESTORS": "'self' https://shop.example"})
    app = create_app(
        {
            "TESTING": True,
            **settings,
            "ADMIN_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'log.sqlite3'}",
            "RATE_LIMIT": None,
        },
        dialogue=dialogue,
    )
    response = app.test_client().get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    policy = response.headers["Content-Security-Policy"]
    assert policy.count("frame-ancestors") == 1 and policy.endswith("frame-ancestors 'none'"), policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "shop.example" not in policy


@pytest.mark.parametrize("value", ["https://a.example; script-src *", "'unsafe-inline'", "'self';"])
def test_a_frame_ancestors_value_cannot_inject_a_directive(value: str) -> None:
    with pytest.raises(ValueError, match="CHATBOT_FRAME_ANCESTORS"):
        app_settings({"CHATBOT_FRAME_ANCESTORS": value})


def test_a_client_over_its_limit_gets_429_with_retry_after(dialogue) -> None:
    client = limited_app(dialogue).test_client()
    for path in ("/predict", "/api/v1/parse", "/api/v1/chat"):  # one budget over the endpoints
        body = {"data": "hi", "text": "hi", "message": "hi"}
        assert client.post(path, json=body).status_code == 200
    response = client.post("/api/v1/parse", json={"text": "hi"})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_requests"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert client.get("/healthz").status_code == 200  # probes are never limited
    assert client.get("/").status_code == 200
    other = client.post("/api/v1/parse", json={"text": "hi"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert other.status_code == 200  # the limit is per client


def test_requests_that_match_no_route_are_limited_too(dialogue) -> None:
    client = limited_app(dialogue, "3/minute").test_client()
    statuses = [client.open(f"/made/up/{number}", method="BREW").status_code for number in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert client.post("/predict", json={"data": "hi"}).status_code == 429  # one budget
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(dialogue) -> None:
    def statuses(app) -> list[int]:
        client = app.test_client()
        forwarded = [{"X-Forwarded-For": f"203.0.113.{i}"} for i in range(3)]
        return [client.post("/predict", json={"data": "hi"}, headers=h).status_code for h in forwarded]

    assert statuses(limited_app(dialogue, "1/minute")) == [200, 429, 429]  # spoofing does not help
    assert statuses(limited_app(dialogue, "1/minute", TRUSTED_PROXIES=1)) == [200, 200, 200]


@pytest.mark.slow
def test_under_gunicorn_errors_leak_nothing_even_with_flask_debug(
    serve, tmp_path: Path, tiny_model_path
) -> None:
    model_path = Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))
    env = {"FLASK_DEBUG": "1", "CHATBOT_ADMIN_TOKEN": TOKEN}
    server = serve(model_path, env, app_uri="tests.broken_app:create()")
    response = server.get("/boom")
    assert (response.status_code, response.headers["Content-Type"]) == (500, "application/json")
    assert response.json()["error"]["code"] == "internal_server_error"
    for leak in ("Traceback", SECRET, str(ROOT), ".py", "__debugger__"):
        assert leak not in response.text
    assert "__debugger__" not in server.get("/?__debugger__=yes&cmd=resource&f=debugger.js").text
    model_path.write_bytes(model_path.read_bytes()[:3000])  # a truncated bundle, refused by reload
    refused = requests.post(
        f"{server.url}/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert refused.status_code == 422
    assert "model.h5: corrupt or truncated model file" in refused.json()["error"]["message"]
    assert str(tmp_path) not in refused.text and "Traceback" not in refused.text
    log = server.log_so_far()
    assert SECRET in log and "Traceback" in log  # the operator still gets the details


@pytest.mark.slow
def test_the_limit_is_shared_by_every_worker_through_redis(
    serve, processes, tmp_path, tiny_model_path
) -> None:
    store = RedisServer(tmp_path / "redis")
    processes.append(store)
    store.start()
    env = {"REDIS_URL": store.url, "WEB_CONCURRENCY": "2", "CHATBOT_RATE_LIMIT": "5/minute"}
    server = serve(tiny_model_path, env)
    workers = sorted(wait_until(lambda: len(server.worker_pids()) == 2 and server.worker_pids()))
    statuses = []
    for number in range(12):  # the workers take turns
        with server.only_worker(workers[number % 2]):
            statuses.append(server.post("/predict", {"data": "hi"}).status_code)
    assert statuses == [200] * 5 + [429] * 7  # 2 workers counting alone would allow up to 10
    retry_after = requests.post(f"{server.url}/predict", json={"data": "hi"}, timeout=10).headers[
        "Retry-After"
    ]
    keys = redis.Redis.from_url(store.url).keys("*chatbot*")
    assert keys, "the counts are not in Redis"
    record_figures(
        "rate_limit",
        {
            "limit": "5/minute",
            "workers": 2,
            "sent": 12,
            "answered": statuses.count(200),
            "refused_429": statuses.count(429),
            "retry_after_s": int(retry_after),
        },
    )
    store.stop()  # Redis down: answers go on, unlimited, as conversations go on without context
    wait_until(
        lambda: requests.post(f"{server.url}/predict", json={"data": "hi"}, timeout=10).status_code == 200,
        timeout=10,
    )
