"""The command line: train, predict and chat as a user runs them."""

from __future__ import annotations

import pytest

from chatbot.cli import build_parser
from tests.support import run_cli

pytestmark = pytest.mark.slow


def test_train_prints_a_summary_and_writes_the_model(tmp_path, tiny_intents) -> None:
    from tests.support import TINY_INTENTS, write_json

    data = write_json(tmp_path / "intents.json", TINY_INTENTS)
    out = tmp_path / "models" / "bot.h5"
    result = run_cli("train", "--data", str(data), "--out", str(out), "--epochs", "300", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "trained an n-gram model for 5 intents on 20 patterns" in result.stdout
    assert "train accuracy 1.000" in result.stdout
    assert f"saved {out}" in result.stdout
    assert out.is_file()


def test_predict(tiny_model_path) -> None:
    result = run_cli("predict", "--model", str(tiny_model_path), "see you later")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].endswith("goodbye")
    assert result.stdout.splitlines()[-1] in {"answer: Bye!", "answer: See you."}


def test_predict_with_a_missing_model(tmp_path) -> None:
    result = run_cli("predict", "--model", str(tmp_path / "none.h5"), "hi")
    assert result.returncode == 2
    assert "model file not found" in result.stderr and "Traceback" not in result.stderr


def test_chat_keeps_context(tiny_model_path) -> None:
    result = run_cli(
        "chat", "--model", str(tiny_model_path), input="where is my order\nthe number is 42\nquit\n"
    )
    assert result.returncode == 0
    assert "bot> What is your order number?" in result.stdout
    assert "bot> Thanks, looking it up." in result.stdout


def test_serve_is_a_command() -> None:
    args = build_parser().parse_args(["serve", "--port", "5099"])
    assert args.port == 5099 and args.command.__name__ == "run_serve"
