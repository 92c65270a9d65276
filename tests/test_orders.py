"""The default bot looks orders up: gunicorn and the example order service (deploy/orders), both real."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from chatbot.data.actions import MAX_SIGNATURE_AGE, SIGNATURE_HEADER, sign
from deploy.orders import orders
from tests.harness import ProcessExitedError
from tests.support import OrderBot, Server

pytestmark = pytest.mark.slow

SECRET = "order-secret-0123456789"

ASK = "What is your order number?"


def chat(server, session: str, message: str) -> dict:
    response = server.post("/api/v1/chat", {"session_id": session, "message": message})
    assert response.status_code == 200, response.text
    return response.json()


def test_order_status_asks_for_the_number_and_shows_the_services_answer(serve, order_bot: OrderBot) -> None:
    server = serve(order_bot.model_path, order_bot.env)
    asked = chat(server, "o1", "where is my order?")
    assert (asked["intent"]["name"], ASK in asked["response"]) == ("order_status", True)
    answered = chat(server, "o1", "it's ACM-20931")
    assert answered["response"].startswith("Order ACM-20931 ")
    assert answered["slots"] == {"order_number": "ACM-20931"}
    assert answered["quick_replies"] == ["Talk to a person"]
    up_front = chat(server, "o2", "where is order 12345")  # the number given up front: no question
    assert up_front["intent"]["name"] == "order_status" and up_front["response"].startswith("Order 12345 ")
    assert "order status asked for ACM-20931" in order_bot.orders_log.read_text()
    metrics = server.get("/metrics").text
    assert 'chatbot_action_calls_total{intent="order_status",outcome="ok"}' in metrics


def test_a_wrong_signature_is_refused_by_the_order_service(serve, order_bot: OrderBot) -> None:
    server = serve(order_bot.model_path, {**order_bot.env, "CHATBOT_ACTION_SECRET": "another-secret-0123456"})
    reply = chat(server, "o3", "where is order 12345")
    assert reply["response"].startswith("Sorry, I can't reach our order system")  # the action's fallback
    assert 'outcome="http_error"' in server.get("/metrics").text


def test_a_model_calling_urls_outside_the_allowlist_does_not_start(order_bot: OrderBot) -> None:
    server = Server(order_bot.model_path, {"CHATBOT_ACTION_ALLOWLIST": "https://shop.example/"})
    with server, pytest.raises(ProcessExitedError, match="is not in the allowlist"):
        server.start(timeout=20)


@pytest.mark.parametrize(("age", "status"), [(0, 200), (MAX_SIGNATURE_AGE + 60, 401)])
def test_the_order_service_refuses_a_replayed_event(age: int, status: int) -> None:
    """Issue 21, item 15: an event signed more than MAX_SIGNATURE_AGE seconds ago is a replay."""
    server = orders.serve("127.0.0.1", 0, SECRET)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = json.dumps({"event": "action", "slots": {"order_number": "12345"}}).encode()
        signature = sign(body, SECRET, timestamp=int(time.time()) - age)
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        connection.request("POST", orders.STATUS_PATH, body, {SIGNATURE_HEADER: signature})
        assert connection.getresponse().status == status
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
