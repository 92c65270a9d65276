"""``chatbot validate``: each check on a hand-written table, the real file, and the command's exit status."""

from __future__ import annotations

import copy

import pytest

from chatbot.data.checks import CHECKS, ERROR, WARNING, check_file, run_checks
from chatbot.data.intents import validate_intents
from tests.support import DEFAULT_INTENTS, TINY_INTENTS, run_cli, write_json


def intents_with(*changes: tuple[int, str, object]) -> dict:
    """Return the tiny bot's intents with some fields replaced: (intent index, key, value)."""
    data = copy.deepcopy(TINY_INTENTS)
    for index, key, value in changes:
        data["intents"][index][key] = value
    return data


GREETINGS = ["hi", "hello", "hey there", "good morning"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TINY_INTENTS, []),
        (intents_with((0, "patterns", [*GREETINGS, "Hello!"])), [(WARNING, "duplicate-phrase", "greeting")]),
        (
            intents_with((1, "patterns", ["bye", "goodbye", "see you", "Hey there!"])),
            [(ERROR, "phrase-in-two-intents", "goodbye")],
        ),
        (intents_with((0, "patterns", ["hi", "hello"])), [(WARNING, "too-few-phrases", "greeting")]),
        (
            intents_with((1, "patterns", ["bye", "goodbye", "see you", "track my parcels"])),
            [(WARNING, "near-duplicate-phrases", "order")],
        ),
        (intents_with((0, "responses", ["x" * 1001])), [(WARNING, "response-too-long", "greeting")]),
    ],
)
def test_checks_find_each_problem(data: dict, expected: list[tuple[str, str, str]]) -> None:
    findings = run_checks(validate_intents(data))
    assert [(finding.severity, finding.check, finding.intent) for finding in findings] == expected


def test_a_new_check_is_one_function_appended_to_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.data.checks import Finding

    def check_no_shouting(intents):
        return [Finding(WARNING, "shouting", p, i.tag) for i in intents for p in i.patterns if p.isupper()]

    monkeypatch.setattr("chatbot.data.checks.CHECKS", [*CHECKS, check_no_shouting])
    findings = run_checks(validate_intents(intents_with((0, "patterns", [*GREETINGS, "HELLO BOT"]))))
    assert [finding.check for finding in findings] == ["shouting"]


def test_the_default_bot_passes_even_the_strict_checks() -> None:
    assert check_file(DEFAULT_INTENTS) == []


def test_schema_errors_are_findings(tmp_path) -> None:
    path = write_json(tmp_path / "intents.json", intents_with((0, "responses", [])))
    [finding] = check_file(path)
    assert (
        finding.severity == ERROR and finding.check == "schema" and '"responses" is empty' in finding.message
    )


@pytest.mark.slow
def test_validate_exit_status_and_training_refuses_errors(tmp_path) -> None:
    clean = write_json(tmp_path / "clean.json", TINY_INTENTS)
    warned = write_json(tmp_path / "warned.json", intents_with((0, "patterns", [*GREETINGS, "Hello!"])))
    broken = write_json(tmp_path / "broken.json", intents_with((1, "patterns", ["bye", "goodbye", "hi"])))
    assert run_cli("validate", "--data", str(clean)).returncode == 0
    assert run_cli("validate", "--data", str(warned)).returncode == 0
    strict = run_cli("validate", "--data", str(warned), "--strict")
    assert strict.returncode == 1 and "duplicate-phrase" in strict.stdout
    result = run_cli("validate", "--data", str(broken))
    assert result.returncode == 1
    assert "error: intent 'goodbye': 'hi' is also a phrase of intent 'greeting'" in result.stdout
    train = run_cli("train", "--data", str(broken), "--out", str(tmp_path / "never.h5"))
    assert train.returncode == 1 and "phrase-in-two-intents" in train.stderr
    assert not (tmp_path / "never.h5").exists()


def test_drop_conflicts_removes_every_copy_of_a_phrase_in_two_intents() -> None:
    from chatbot.data.checks import drop_phrases_in_two_intents

    intents = validate_intents(intents_with((1, "patterns", ["bye", "goodbye", "Hi!", "see you"])))
    kept, dropped = drop_phrases_in_two_intents(intents)
    assert dropped == 2  # "hi" in greeting and "Hi!" in goodbye
    by_tag = {intent.tag: intent.patterns for intent in kept}
    assert by_tag["goodbye"] == ("bye", "goodbye", "see you")
    assert "hi" not in by_tag["greeting"] and len(by_tag["greeting"]) == len(intents[0].patterns) - 1
    assert drop_phrases_in_two_intents(kept) == (kept, 0)
    assert not [finding for finding in run_checks(kept) if finding.check == "phrase-in-two-intents"]


@pytest.mark.slow
def test_training_drops_conflicts_when_asked_and_says_how_many(tmp_path) -> None:
    broken = write_json(tmp_path / "broken.json", intents_with((1, "patterns", ["bye", "goodbye", "hi"])))
    out = tmp_path / "bot.h5"
    train = run_cli(
        "train",
        "--data",
        str(broken),
        "--out",
        str(out),
        "--drop-conflicts",
        "--encoder",
        "none",
        "--epochs",
        "40",
    )
    assert train.returncode == 0, train.stderr
    assert "dropped 2 phrases filed under two intents" in train.stdout
    assert "without the sentence encoder (encoder: none)" in train.stdout
    assert out.is_file()
