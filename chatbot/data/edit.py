"""Edit an intents file safely: add a phrase or an intent, and record out-of-scope phrases.

The review inbox (``chatbot review`` and /admin/review) writes here. Every edit holds an exclusive
lock on a file beside the intents file, so two reviewers (or a reviewer and a script) never lose
each other's changes; reads the current file; refuses a phrase that is empty, too long, HTML, a
duplicate or another intent's; checks the result with ``validate_intents``; and replaces the file
atomically, in the layout it had (indent and escaping), so a diff shows only the new lines.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatbot.data.intents import FALLBACK_TAG, validate_intents
from chatbot.errors import EditError, IntentsError
from chatbot.files import exclusive_lock, replace_file
from chatbot.text.hidden import find_hidden_character
from chatbot.text.similarity import canonical

MAX_PHRASE_CHARS = 500  # a phrase is what a user types; anything longer is pasted text
MAX_RESPONSE_CHARS = 1000  # as chatbot.data.checks warns about
_MARKUP = re.compile(r"[<>]")  # no tag can be written without them
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TAG = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_phrase(phrase: str) -> str:
    """Return the phrase stripped, or raise EditError saying why it cannot be a training phrase."""
    phrase = " ".join(phrase.split())
    if not phrase:
        raise EditError("the phrase is empty")
    if len(phrase) > MAX_PHRASE_CHARS:
        raise EditError(f"the phrase has {len(phrase)} characters; the limit is {MAX_PHRASE_CHARS}")
    if _MARKUP.search(phrase) or _CONTROL.search(phrase):
        raise EditError("the phrase contains HTML or control characters (< > or below space)")
    if found := find_hidden_character(phrase):
        raise EditError(f"the phrase contains {found[1]}, which changes how it reads without showing")
    return phrase


def add_phrase(path: str | Path, tag: str, phrase: str) -> str:
    """Add a phrase to an existing intent; return the phrase as written."""
    phrase = check_phrase(phrase)
    with _locked(path) as (raw, layout):
        intent = _find_intent(raw, tag)
        if intent is None:
            raise EditError(f"intent {tag!r} does not exist (choose an existing one or create it)")
        _refuse_known(raw, phrase)
        intent.setdefault("patterns", []).append(phrase)
        _write(path, raw, layout)
    return phrase


def add_intent(path: str | Path, tag: str, phrase: str, response: str) -> str:
    """Create an intent with one phrase and one response; return the phrase as written."""
    phrase = check_phrase(phrase)
    response = response.strip()
    if not _TAG.fullmatch(tag) or tag == FALLBACK_TAG:
        raise EditError(f"{tag!r} is not a usable intent name: 1-64 letters, digits, _ or -")
    if not response or len(response) > MAX_RESPONSE_CHARS:
        raise EditError(f"a new intent needs a response of 1 to {MAX_RESPONSE_CHARS} characters")
    with _locked(path) as (raw, layout):
        if _find_intent(raw, tag) is not None:
            raise EditError(f"intent {tag!r} already exists: add the phrase to it instead")
        _refuse_known(raw, phrase)
        raw["intents"].append({"tag": tag, "patterns": [phrase], "responses": [response]})
        _write(path, raw, layout)
    return phrase


def add_out_of_scope(path: str | Path, phrase: str) -> bool:
    """Append a phrase to an out-of-scope file (one a line); return False if it was there already."""
    phrase = check_phrase(phrase)
    path = Path(path)
    with _lock(path):
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if canonical(phrase) in {canonical(line) for line in lines if line.strip()}:
            return False
        _replace(path, "".join(f"{line}\n" for line in [*lines, phrase]))
    return True


def _find_intent(raw: dict[str, Any], tag: str) -> dict[str, Any] | None:
    return next((intent for intent in raw["intents"] if intent.get("tag") == tag), None)


def _refuse_known(raw: dict[str, Any], phrase: str) -> None:
    key = canonical(phrase)
    for intent in raw["intents"]:
        for pattern in intent.get("patterns", []):
            if canonical(pattern) == key:
                raise EditError(f"{phrase!r} is already a phrase of intent {intent['tag']!r} ({pattern!r})")


def _lock(path: Path) -> contextlib.AbstractContextManager[None]:
    """Lock ``.<name>.lock`` beside the file for a read-modify-write."""
    return exclusive_lock(path.with_name(f".{path.name}.lock"))


@contextlib.contextmanager
def _locked(path: str | Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Lock the intents file and yield its parsed JSON and layout, checked valid."""
    path = Path(path)
    with _lock(path):
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text)
        except (OSError, ValueError) as exc:
            raise EditError(f"{path}: cannot read the intents file: {exc}") from exc
        validate_intents(raw, source=str(path))  # never build on a broken file
        yield raw, _layout(text)


def _layout(text: str) -> dict[str, Any]:
    """Find how the file is laid out: its indent and whether non-ASCII characters are escaped."""
    second_line = text.split("\n", 2)[1] if text.count("\n") >= 1 else ""
    indent = len(second_line) - len(second_line.lstrip(" "))
    return {"indent": indent or None, "ensure_ascii": "\\u" in text}


def _write(path: str | Path, raw: dict[str, Any], layout: dict[str, Any]) -> None:
    try:
        validate_intents(raw, source=str(path))
    except IntentsError as exc:  # an edit that would break the file is refused, the file kept
        raise EditError(f"the change would make the file invalid: {exc}") from exc
    _replace(Path(path), json.dumps(raw, **layout) + "\n")


def _replace(path: Path, text: str) -> None:
    """Replace the file with ``text`` atomically, keeping its permissions."""
    try:
        replace_file(path, text.encode("utf-8"))
    except OSError as exc:
        raise EditError(f"{path}: cannot write ({exc.strerror or exc}); the file is unchanged") from exc
