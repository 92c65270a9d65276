"""The whole learning loop as an author runs it: chat, review, assign, validate, retrain, compare,
reload, and the bot now answers. Once through the real page in Chromium with the default SQLite log,
and once with PostgreSQL + Redis + two replicas behind nginx."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser import send, wait_for_answers
from tests.harness import wait_until
from tests.support import TINY_INTENTS, Nginx, PostgresServer, RedisServer, Server, run_cli, write_json

pytestmark = pytest.mark.slow

TOKEN = "learning-loop-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ANSWER = "Yes: gift cards from 10 to 200 euros, by e-mail."
QUESTIONS = ("any gift cards", "Any gift cards?")  # words the tiny bot never saw: a fallback


def retrain_compare_and_install(data: Path, model: Path) -> None:
    """Validate the edited intents, train a new model, compare it with the one in service, install it."""
    validated = run_cli("validate", "--data", str(data))
    assert validated.returncode == 0, validated.stdout
    new_model = model.with_name("candidate.h5")
    run_cli("train", "--data", str(data), "--out", str(new_model), "--seed", "7", check=True)
    compared = run_cli(
        "evaluate", "--data", str(data), "--model", str(new_model), "--compare", str(model),
        "--out", str(model.parent / "evaluation"), "--max-drop", "2",
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "gift_cards" in compared.stdout  # the new intent appears among the changes
    shutil.copy(new_model, model)


def fingerprint(model: Path) -> str:
    from chatbot.classifier.bundle import Bundle

    return Bundle.load(model).fingerprint


def test_the_loop_through_the_page_and_the_cli(
    page: Page,
    serve,
    tmp_path: Path,
    tiny_model_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    data = write_json(tmp_path / "data" / "intents.json", TINY_INTENTS)
    model = Path(shutil.copy(tiny_model_path, tmp_path / "models" / "model.h5"))
    env = {
        "CHATBOT_LOG": "on",
        "CHATBOT_ADMIN_TOKEN": TOKEN,
        "CHATBOT_DATA": str(data),
        "WEB_CONCURRENCY": "2",
    }
    bot: Server = serve(model, env)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)

    # Users ask something the bot was never taught.
    page.goto(bot.url + "/")
    for count, question in enumerate([*QUESTIONS, "hello"], start=1):
        send(page, question)
        wait_for_answers(page, count)

    # The author opens the inbox, sees the question once with its count, and creates an intent.
    page.goto(bot.url + "/admin/review")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Open the inbox").click()
    groups = page.locator(".review-group")

    def listed() -> bool:
        """the inbox lists both logged questions (each worker's writer flushes every half second)"""
        page.wait_for_timeout(300)
        meta = groups.filter(has_text=QUESTIONS[0]).locator(".review-meta")
        if meta.count() and "2 messages" in meta.first.inner_text():
            return True
        page.reload()  # the token stays in sessionStorage: the page loads the inbox again
        return False

    wait_until(listed, timeout=15)
    group = groups.filter(has_text=QUESTIONS[0])
    expect(group).to_have_count(1)
    expect(group.locator(".review-meta")).to_contain_text("2 messages")
    expect(page.locator("#chart-fallback-rate")).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"))
    group.get_by_label("Decision").select_option("new")
    group.get_by_label("New intent name").fill("gift_cards")
    group.get_by_label("Its response").fill(ANSWER)
    group.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("status")).to_contain_text("created intent 'gift_cards'")
    expect(group).to_have_count(0)

    # Validate, retrain, compare and reload; the bot now answers the question.
    retrain_compare_and_install(data, model)
    before = bot.worker_pids()
    reloaded = requests.post(f"{bot.url}/admin/reload", headers=AUTH, timeout=10)
    assert reloaded.status_code == 202, reloaded.text
    wait_until(lambda: bot.serves_on_every_worker(fingerprint(model), 2, before), timeout=30)
    page.goto(bot.url + "/")
    send(page, "any gift cards")  # the page keeps the earlier conversation: this is answer 4
    assert wait_for_answers(page, 4)[-1] == ANSWER
    assert not [problem for problem in problems if "Content Security Policy" in problem]


def test_the_loop_with_postgres_redis_and_two_replicas_behind_nginx(
    request: pytest.FixtureRequest, serve, processes, tmp_path: Path, tiny_model_path: Path
) -> None:
    database = PostgresServer()
    processes.append(database)
    request.addfinalizer(database.remove)  # after the processes fixture has stopped it
    database.start()
    redis_server = RedisServer(tmp_path / "redis")
    processes.append(redis_server)
    redis_server.start()
    data = write_json(tmp_path / "intents.json", TINY_INTENTS)
    model = Path(shutil.copy(tiny_model_path, tmp_path / "model.h5"))
    env = {
        "CHATBOT_LOG": "on",
        "CHATBOT_DATABASE_URL": database.url,
        "REDIS_URL": redis_server.url,
        "CHATBOT_ADMIN_TOKEN": TOKEN,
        "CHATBOT_DATA": str(data),
    }
    replicas = [serve(model, env) for _ in range(2)]
    nginx = Nginx(tmp_path / "nginx", [replica.url for replica in replicas])
    processes.append(nginx)
    nginx.start()

    # Through nginx, the questions land on both replicas; both log them to the one database.
    for question in QUESTIONS * 2:
        reply = requests.post(f"{nginx.url}/api/v1/chat", json={"message": question}, timeout=10).json()
        assert reply["fallback"] is True

    def inbox() -> list[dict]:
        """the four questions are in the inbox, as one group"""
        groups = requests.get(f"{nginx.url}/admin/review/inbox", headers=AUTH, timeout=10).json()["groups"]
        return groups if groups and groups[0]["count"] == 4 else []

    [group] = wait_until(inbox, timeout=15)
    decided = requests.post(
        f"{nginx.url}/admin/review/groups/{group['id']}",
        json={"action": "new_intent", "intent": "gift_cards", "response": ANSWER, "phrase": QUESTIONS[0]},
        headers=AUTH,
        timeout=10,
    )
    assert decided.status_code == 200, decided.text
    assert requests.get(f"{nginx.url}/admin/review/inbox", headers=AUTH, timeout=10).json()["total"] == 0

    retrain_compare_and_install(data, model)
    before = {replica.url: replica.worker_pids() for replica in replicas}
    for replica in replicas:  # each replica is its own gunicorn: reload each
        assert requests.post(f"{replica.url}/admin/reload", headers=AUTH, timeout=10).status_code == 202
    new_fingerprint = fingerprint(model)

    def reloaded() -> bool:
        """each replica's one worker is a new one, serving the new model"""
        return all(
            replica.serves_on_every_worker(new_fingerprint, 1, before[replica.url]) for replica in replicas
        )

    wait_until(reloaded, timeout=30)
    for _ in range(4):
        reply = requests.post(
            f"{nginx.url}/api/v1/chat", json={"message": "any gift cards"}, timeout=10
        ).json()
        assert reply["response"] == ANSWER
