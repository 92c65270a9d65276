"""Scale-out, as deployed: two gunicorn instances behind a real nginx (round-robin) sharing a real
redis-server, all on 127.0.0.1. Context and handoffs cross instances, and a Redis outage only costs
context."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import requests

from tests.harness import free_port, wait_until
from tests.support import ROOT, Nginx, RedisServer, Server, WebhookServer, record_figures, with_slots

pytestmark = pytest.mark.slow

OUTAGE = "Redis unavailable"
RECOVERY = "Redis available again"
ADMIN = "scale-admin-token-0123456789"


def chat(url: str, session_id: str, message: str) -> dict:
    response = requests.post(
        f"{url}/api/v1/chat", json={"session_id": session_id, "message": message}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def asks_for_order_number(url: str, session_id: str) -> None:
    assert chat(url, session_id, "where is my order")["context"] == "order_number"


def takes_order_number(url: str, session_id: str) -> bool:
    """Say whether the number was understood, which only happens in the order_number context."""
    reply = chat(url, session_id, "the number is 42")
    return reply["intent"]["name"] == "order_number" and not reply["fallback"]


def readiness(url: str) -> dict:
    response = requests.get(f"{url}/readyz", timeout=10)
    assert response.status_code == 200
    return response.json()


def test_replicas_behind_nginx_share_context_and_ride_out_a_redis_outage(
    serve, processes, tmp_path: Path, tiny_model_path: Path
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    processes.append(redis_server)
    redis_server.start()
    instances: list[Server] = [serve(tiny_model_path, {"REDIS_URL": redis_server.url}) for _ in range(2)]
    nginx = Nginx(tmp_path / "nginx", [instance.url for instance in instances])
    processes.append(nginx)
    nginx.start()
    first, second = (instance.url for instance in instances)

    # nginx alternates between the two instances.
    pids = {instance.get("/version").json()["served_by"]["pid"] for instance in instances}
    through_nginx = [
        requests.get(f"{nginx.url}/version", timeout=10).json()["served_by"]["pid"] for _ in range(4)
    ]
    assert set(through_nginx) == pids and len(pids) == 2
    assert through_nginx[0] != through_nginx[1] and through_nginx[0] == through_nginx[2]

    # A context set through one instance is honoured through the other, and through nginx.
    asks_for_order_number(first, "direct")
    assert takes_order_number(second, "direct")
    asks_for_order_number(nginx.url, "balanced")
    assert takes_order_number(nginx.url, "balanced")
    assert all(readiness(url)["status"] == "ready" for url in (first, second, nginx.url))

    # Redis dies mid-conversation: answers go on without context, and no 5xx.
    asks_for_order_number(nginx.url, "cut")
    redis_server.stop(signal.SIGKILL)
    assert not takes_order_number(first, "cut")
    assert not takes_order_number(second, "cut")
    for number in range(10):
        assert chat(nginx.url, f"during-{number}", "hello")["fallback"] is False
    for url in (first, second, nginx.url):
        assert readiness(url) | {"model": None} == {
            "status": "degraded",
            "model": None,
            "sessions": {"store": "redis", "available": False},
        }
    for instance in instances:  # one warning per outage, not one per request
        assert instance.log_so_far().count(OUTAGE) == 1

    # Redis comes back: within the store's back-off, context works again everywhere.
    redis_server.start()
    wait_until(lambda: all(readiness(url)["status"] == "ready" for url in (first, second)), timeout=10)
    asks_for_order_number(second, "after")
    assert takes_order_number(first, "after")
    asks_for_order_number(nginx.url, "after-balanced")
    assert takes_order_number(nginx.url, "after-balanced")
    for instance in instances:
        log = instance.log_so_far()
        assert (log.count(OUTAGE), log.count(RECOVERY)) == (1, 1)


def test_redis_down_at_start_the_server_answers_without_context(serve, tiny_model_path: Path) -> None:
    server = serve(tiny_model_path, {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})  # nothing there
    asks_for_order_number(server.url, "nowhere")
    assert not takes_order_number(server.url, "nowhere")
    assert readiness(server.url)["sessions"] == {"store": "redis", "available": False}
    assert server.log_so_far().count(OUTAGE) == 1


def test_the_compose_nginx_keeps_admin_and_metrics_off_the_public_address(
    serve, tiny_model_path: Path, tmp_path: Path, processes
) -> None:
    """Issue 13, finding 10: deploy/compose/nginx.conf routed /admin/ and /metrics publicly."""
    server = serve(tiny_model_path, {"CHATBOT_ADMIN_TOKEN": "compose-nginx-token-0123456789"})
    nginx = Nginx(tmp_path / "nginx", [server.url])
    compose_server = (ROOT / "deploy" / "compose" / "nginx.conf").read_text(encoding="utf-8")
    compose_server = compose_server.replace("listen 80;", f"listen 127.0.0.1:{nginx.port};")
    compose_server = re.sub(r"server app:5000[^;]*;", f"server 127.0.0.1:{server.port};", compose_server)
    config = nginx.config.read_text()
    nginx.config.write_text(config[: config.index("    upstream chatbot")] + compose_server + "}\n")
    processes.append(nginx)
    nginx.start()
    blocked = [
        "/admin/reload",
        "/admin",
        "/%61dmin/reload",
        "//admin/reload",
        "/metrics",
        "/metrics/",
        "//metrics",
    ]
    for path in blocked:
        for method in ("GET", "POST"):
            response = requests.request(method, f"{nginx.url}{path}", timeout=10)
            assert response.status_code == 404, (method, path)
            assert b"chatbot_" not in response.content
    assert requests.get(f"{nginx.url}/healthz", timeout=10).status_code == 200
    assert server.get("/metrics").status_code == 200  # the replica's own address still serves them
    record_figures("compose_nginx", {"blocked_paths": len(blocked), "methods": 2})


def test_handoff_round_trip_across_replicas_sharing_redis(
    serve, processes, tmp_path: Path, tiny_bundle
) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    processes.append(redis_server)
    redis_server.start()
    model = with_slots(tiny_bundle).save(tmp_path / "handoff.h5")  # "bye" hands over
    with WebhookServer("ok") as operator:
        env = {
            "REDIS_URL": redis_server.url,
            "CHATBOT_ADMIN_TOKEN": ADMIN,
            "CHATBOT_HANDOFF_URL": operator.url,
        }
        first, second = (serve(model, env) for _ in range(2))
        chat(first.url, "h1", "where is my order 12345")
        assert chat(first.url, "h1", "bye")["handoff"] is True
        silent = chat(second.url, "h1", "is anyone there?")  # the other replica knows: it stays silent
        assert (silent["handoff"], silent["response"], silent["slots"]) == (
            True,
            "",
            {"order_number": "12345"},
        )
        released = requests.post(
            f"{second.url}/admin/sessions/h1/release",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert released.json() == {"session_id": "h1", "status": "released"}
        back = chat(first.url, "h1", "hello")
        assert back["handoff"] is False and back["response"] in ("Hello!", "Hi there.")
    assert [event["event"] for event, _ in operator.received] == ["handoff", "message"]
    assert [turn["message"] for turn in operator.received[0][0]["transcript"]] == [
        "where is my order 12345",
        "bye",
    ]
    started = 'chatbot_handoffs_total{event="started"} 1.0'
    released_metric = 'chatbot_handoffs_total{event="released"} 1.0'
    assert started in first.get("/metrics").text and released_metric in second.get("/metrics").text
