"""Review edits to intents.json: refused with a clear message when bad, atomic, layout kept, and
safe when several processes edit the same file at once."""

from __future__ import annotations

import difflib
import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from chatbot.data.edit import add_intent, add_out_of_scope, add_phrase
from chatbot.data.intents import load_intents
from chatbot.errors import EditError
from tests.support import DEFAULT_INTENTS


@pytest.fixture
def intents_path(tmp_path: Path) -> Path:
    """Return a copy of the default bot's intents file, in its committed layout."""
    return Path(shutil.copy(DEFAULT_INTENTS, tmp_path / "intents.json"))


def test_adding_a_phrase_changes_only_its_line(intents_path: Path) -> None:
    before = intents_path.read_text(encoding="utf-8").splitlines()
    assert add_phrase(intents_path, "hours", "  are you   open on sundays ") == "are you open on sundays"
    after = intents_path.read_text(encoding="utf-8").splitlines()
    changed = [line for line in difflib.ndiff(before, after) if line[0] in "+-"]
    assert changed == [
        '-         "Until what time are you open?"',
        '+         "Until what time are you open?",',
        '+         "are you open on sundays"',
    ]
    assert (
        "are you open on sundays" in next(i for i in load_intents(intents_path) if i.tag == "hours").patterns
    )


def test_a_new_intent_is_appended_valid(intents_path: Path) -> None:
    add_intent(intents_path, "gift_cards", "do you sell gift cards", "Yes, from 10 to 200 euros.")
    intent = load_intents(intents_path)[-1]
    assert (intent.tag, intent.patterns, intent.responses) == (
        "gift_cards",
        ("do you sell gift cards",),
        ("Yes, from 10 to 200 euros.",),
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda path: add_phrase(path, "nope", "hello there friend"), "intent 'nope' does not exist"),
        (lambda path: add_phrase(path, "hours", "<script>alert(1)</script>"), "contains HTML"),
        (lambda path: add_phrase(path, "hours", "a" * 10_000), "10000 characters; the limit is 500"),
        (lambda path: add_phrase(path, "hours", "   "), "the phrase is empty"),
        (lambda path: add_phrase(path, "hours", "hello!"), "already a phrase of intent 'greeting'"),
        (lambda path: add_phrase(path, "greeting", "HELLO"), "already a phrase of intent 'greeting'"),
        (lambda path: add_intent(path, "hours", "when do you open", "9 to 5"), "'hours' already exists"),
        (lambda path: add_intent(path, "bad tag!", "when do you open", "9 to 5"), "not a usable intent name"),
        (lambda path: add_intent(path, "opening", "when do you open", " "), "needs a response"),
    ],
)
def test_bad_edits_are_refused_and_leave_the_file_as_it_was(intents_path: Path, edit, message: str) -> None:
    before = intents_path.read_bytes()
    with pytest.raises(EditError, match=message):
        edit(intents_path)
    assert intents_path.read_bytes() == before


def test_out_of_scope_phrases_are_kept_once(tmp_path: Path) -> None:
    path = tmp_path / "out_of_scope.txt"
    assert add_out_of_scope(path, "what's the weather")
    assert not add_out_of_scope(path, "What's the weather?")
    assert add_out_of_scope(path, "play some music")
    assert path.read_text(encoding="utf-8") == "what's the weather\nplay some music\n"


def _add_many(path: str, worker: int) -> None:
    for number in range(10):
        add_phrase(path, "hours", f"question {worker} number {number} about opening")


def test_concurrent_edits_from_several_processes_all_land(intents_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_add_many, args=(str(intents_path), worker)) for worker in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 4
    hours = next(intent for intent in load_intents(intents_path) if intent.tag == "hours")
    assert sum(pattern.startswith("question ") for pattern in hours.patterns) == 40
    json.loads(intents_path.read_text(encoding="utf-8"))  # still one valid document
