"""The channels on real gunicorn with 2 workers sharing a real redis-server: a Rasa-shaped client
through a whole order-status conversation, and Telegram and Slack whose APIs (local servers on
127.0.0.1) fail or hang while other connections keep their latency."""

from __future__ import annotations

import hashlib
import hmac
import json
import statistics
import time
from pathlib import Path

import pytest
import requests

from chatbot.learning.message_log import ConversationStore
from tests.harness import wait_until
from tests.support import (
    SLACK_SECRET,
    TELEGRAM_SECRET,
    OrderBot,
    PlatformApi,
    RedisServer,
    platform_config,
    record_figures,
    slack_body,
    telegram_update,
    with_slots,
)

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "channels-admin-token-0123456789"


@pytest.fixture
def redis_url(tmp_path: Path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server.url
    finally:
        server.stop()


class RasaClient:
    """What a front-end written for Rasa's REST channel does: post a message, show the texts and buttons."""

    def __init__(self, base_url: str, sender: str) -> None:
        self.url = f"{base_url}/webhooks/rest/webhook"
        self.sender = sender

    def say(self, text: str) -> list[dict]:
        response = requests.post(
            self.url,
            json={"sender": self.sender, "message": text, "metadata": {"page": "/orders"}},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        messages = response.json()
        assert all(message["recipient_id"] == self.sender for message in messages)
        return messages

    def press(self, messages: list[dict], title: str) -> list[dict]:
        (button,) = [button for button in messages[-1]["buttons"] if button["title"] == title]
        return self.say(button["payload"])


def test_a_rasa_client_goes_through_an_order_status_conversation(
    serve, order_bot: OrderBot, redis_url: str
) -> None:
    env = {
        **order_bot.env,
        "REDIS_URL": redis_url,
        "WEB_CONCURRENCY": "2",
        "CHATBOT_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    server = serve(order_bot.model_path, env)
    client = RasaClient(server.url, "rasa-user-1")
    asked = client.say("where is my order?")
    assert "order number" in asked[0]["text"]
    answered = client.say("it's ACM-20931")  # the other worker may answer: the context is in Redis
    assert answered[0]["text"].startswith("Order ACM-20931 ")
    assert answered[-1]["buttons"] == [{"title": "Talk to a person", "payload": "Talk to a person"}]
    handed = client.press(answered, "Talk to a person")
    assert "person" in handed[0]["text"]
    assert client.say("are you there?") == []  # a person has it now: the bot is silent
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    session = "rest:rasa-user-1"
    listed = requests.get(f"{server.url}/admin/inbox/conversations", headers=auth, timeout=10).json()
    assert [item["session_id"] for item in listed["conversations"]] == [session]
    for action, fields in (("claim", {}), ("reply", {"text": "Alice here, checking ACM-20931."})):
        response = requests.post(
            f"{server.url}/admin/inbox/conversations/{session}/{action}",
            json={"operator": "Alice", **fields},
            headers=auth,
            timeout=10,
        )
        assert response.status_code == 200, response.text
    assert client.say("thanks") == [
        {"recipient_id": "rasa-user-1", "text": "Alice here, checking ACM-20931."}
    ]


def telegram_post(url: str, update: dict) -> requests.Response:
    return requests.post(
        f"{url}/webhooks/telegram",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
        timeout=10,
    )


def slack_post(url: str, payload: dict) -> requests.Response:
    body = json.dumps(payload).encode()
    stamp = str(int(time.time()))
    signature = (
        "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    )
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/json",
    }
    return requests.post(f"{url}/webhooks/slack/events", data=body, headers=headers, timeout=10)


def telegram_failures(metrics: str) -> float:
    """Add up the Telegram sends that failed, whatever the way."""
    prefix = 'chatbot_channel_sends_total{channel="telegram",outcome="'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix) and not line.startswith(prefix + 'ok"')
    )


def chat_latency(url: str, count: int) -> list[float]:
    timings = []
    for index in range(count):
        started = time.perf_counter()
        response = requests.post(
            f"{url}/api/v1/chat", json={"session_id": f"lat{index}", "message": "hello"}, timeout=10
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    return timings


def test_telegram_and_slack_on_two_workers_answer_once_and_survive_a_hanging_api(
    serve, tiny_bundle, tmp_path: Path, redis_url: str
) -> None:
    model = with_slots(tiny_bundle).save(tmp_path / "model.h5")
    database = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    with PlatformApi() as api:
        env = {
            "REDIS_URL": redis_url,
            "WEB_CONCURRENCY": "2",
            "CHATBOT_LOG": "on",
            "CHATBOT_DATABASE_URL": database,
            **{f"CHATBOT_{name}": value for name, value in platform_config(api.url).items()},
        }
        server = serve(model, env)
        # A delivery retried by the platform may reach the other worker: answered once all the same.
        for _ in range(3):
            assert telegram_post(server.url, telegram_update(100, "hello")).status_code == 200
            assert slack_post(server.url, slack_body("EvA", "hello")).status_code == 200
        wait_until(lambda: len(api.received) == 2, timeout=10)
        time.sleep(0.5)
        assert sorted(path for path, _, _ in api.received) == [
            "/bot" + platform_config(api.url)["TELEGRAM_TOKEN"] + "/sendMessage",
            "/chat.postMessage",
        ]

        quiet = chat_latency(server.url, 30)
        api.mode = "hang"  # every send now waits for its 5 s deadline, three times
        started = time.monotonic()
        for index in range(20):
            response = telegram_post(
                server.url, telegram_update(200 + index, f"hello number {index}", chat_id=500 + index)
            )
            assert response.status_code == 200
        slack_post(server.url, slack_body("EvB", "hello from slack"))
        webhooks_answered_in = time.monotonic() - started
        busy = chat_latency(server.url, 30)
        metrics = server.get("/metrics").text
        failed = wait_until(lambda: telegram_failures(server.get("/metrics").text) == 20 or None, timeout=40)
        metrics_after = [line for line in server.get("/metrics").text.splitlines() if "channel_sends" in line]
        api.release.set()  # let the hanging handlers go
    assert webhooks_answered_in < 3.0, webhooks_answered_in  # 21 webhooks, none waiting for the API
    ratio = statistics.median(busy) / statistics.median(quiet)
    record_figures(
        "channels_hanging_api",
        {
            "chat_median_ms_quiet": round(statistics.median(quiet) * 1000, 2),
            "chat_median_ms_with_21_hanging_sends": round(statistics.median(busy) * 1000, 2),
            "ratio": round(ratio, 2),
            "webhooks_answered_in_s": round(webhooks_answered_in, 2),
            "channel_sends": metrics_after,
        },
    )
    assert max(busy) < 0.5 and ratio < 3.0, (quiet, busy)
    assert 'channel="telegram",outcome="ok"} 1.0' in metrics
    # Each failure is counted: timeouts first, then the breaker keeps further calls away.
    assert failed, metrics_after
    server.stop()  # the writers flush at exit
    texts = {row["text"] for row in ConversationStore(database).recent(limit=500)}
    assert {f"hello number {index}" for index in range(20)} <= texts  # logged though never delivered
    assert "hello from slack" in texts
