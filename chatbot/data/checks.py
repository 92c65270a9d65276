"""Check an intents file for what makes a bot worse before training: ``chatbot validate``.

Two words, two jobs: ``validate_*`` functions (``chatbot.data.intents.validate_intents``) raise
IntentsError for a schema error, a file that cannot be read as a bot at all; ``check_*`` and
``run_checks`` here return findings, what makes a readable file train badly. On a file that passes
validation, every function in CHECKS runs and returns findings. A check is a small function from the intents to findings, so
adding one (entities, slots, webhooks...) means writing it and appending it to CHECKS. Errors make
``chatbot validate`` and ``chatbot train`` fail; warnings fail only ``validate --strict``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.data.intents import FALLBACK_TAG, Intent, load_intents
from chatbot.errors import IntentsError
from chatbot.text.similarity import NEAR_DUPLICATE, canonical, similar_pairs

ERROR = "error"
WARNING = "warning"
MIN_PHRASES = 3  # fewer and the model learns the words of those phrases, not the intent
MAX_RESPONSE_CHARS = 1000  # longer answers overflow the chat widget's bubble


@dataclass(frozen=True)
class Finding:
    """One problem in an intents file, named so the author can find and fix it."""

    severity: str  # ERROR or WARNING
    check: str  # a short stable name, e.g. "phrase-in-two-intents"
    message: str
    intent: str | None = None  # the intent's tag, when the problem is in one

    def __str__(self) -> str:
        where = f"intent {self.intent!r}: " if self.intent else ""
        return f"{self.severity}: {where}{self.message} [{self.check}]"


Check = Callable[[Sequence[Intent]], Iterable[Finding]]


def check_duplicate_phrases(intents: Sequence[Intent]) -> Iterable[Finding]:
    """Warn about a phrase repeated within one intent (it only weighs that phrase more)."""
    for intent in intents:
        seen: dict[str, str] = {}
        for pattern in intent.patterns:
            key = canonical(pattern)
            if key in seen:
                yield Finding(WARNING, "duplicate-phrase", f"{pattern!r} repeats {seen[key]!r}", intent.tag)
            else:
                seen[key] = pattern


def check_phrase_in_two_intents(intents: Sequence[Intent]) -> Iterable[Finding]:
    """Refuse a phrase listed under two intents: the model cannot learn both answers."""
    owner: dict[str, tuple[str, str]] = {}
    for intent in intents:
        for pattern in intent.patterns:
            key = canonical(pattern)
            first = owner.setdefault(key, (intent.tag, pattern))
            if first[0] != intent.tag:
                yield Finding(
                    ERROR,
                    "phrase-in-two-intents",
                    f"{pattern!r} is also a phrase of intent {first[0]!r} ({first[1]!r})",
                    intent.tag,
                )


def drop_phrases_in_two_intents(intents: Sequence[Intent]) -> tuple[list[Intent], int]:
    """Return the intents without any phrase that is filed under two intents (every copy of it goes:
    no intent is its right answer), and how many phrases were dropped (``train --drop-conflicts``)."""
    owners: dict[str, set[str]] = {}
    for intent in intents:
        for pattern in intent.patterns:
            owners.setdefault(canonical(pattern), set()).add(intent.tag)
    kept_intents, dropped = [], 0
    for intent in intents:
        kept = tuple(pattern for pattern in intent.patterns if len(owners[canonical(pattern)]) == 1)
        dropped += len(intent.patterns) - len(kept)
        kept_intents.append(
            dataclasses.replace(intent, patterns=kept) if len(kept) < len(intent.patterns) else intent
        )
    return kept_intents, dropped


def check_too_few_phrases(intents: Sequence[Intent]) -> Iterable[Finding]:
    """Warn about intents with fewer than MIN_PHRASES phrases."""
    for intent in intents:
        if intent.tag != FALLBACK_TAG and len(intent.patterns) < MIN_PHRASES:
            yield Finding(
                WARNING,
                "too-few-phrases",
                f"has {len(intent.patterns)} phrases; write at least {MIN_PHRASES} ways to say it",
                intent.tag,
            )


def check_near_duplicates_across_intents(intents: Sequence[Intent]) -> Iterable[Finding]:
    """Warn about nearly identical phrases in two intents (a typo or a plural apart)."""
    phrases = [(intent.tag, pattern) for intent in intents for pattern in intent.patterns]
    for first, second, score in similar_pairs([pattern for _, pattern in phrases], NEAR_DUPLICATE):
        (first_tag, first_pattern), (second_tag, second_pattern) = phrases[first], phrases[second]
        if first_tag != second_tag and canonical(first_pattern) != canonical(second_pattern):
            yield Finding(
                WARNING,
                "near-duplicate-phrases",
                f"{second_pattern!r} is {score:.0%} like {first_pattern!r} of intent {first_tag!r}",
                second_tag,
            )


def check_responses(intents: Sequence[Intent]) -> Iterable[Finding]:
    """Warn about answers too long for the chat bubble (empty ones fail the schema already)."""
    for intent in intents:
        for position, response in enumerate(intent.responses):
            if len(response) > MAX_RESPONSE_CHARS:
                yield Finding(
                    WARNING,
                    "response-too-long",
                    f"response {position} has {len(response)} characters; keep it under {MAX_RESPONSE_CHARS}",
                    intent.tag,
                )


CHECKS: list[Check] = [
    check_duplicate_phrases,
    check_phrase_in_two_intents,
    check_too_few_phrases,
    check_near_duplicates_across_intents,
    check_responses,
]


def run_checks(intents: Sequence[Intent], checks: Sequence[Check] | None = None) -> list[Finding]:
    """Run the checks on valid intents and return their findings, errors first."""
    findings = [finding for check in (CHECKS if checks is None else checks) for finding in check(intents)]
    return sorted(findings, key=lambda finding: finding.severity != ERROR)


def check_file(path: str | Path) -> list[Finding]:
    """Return the findings on an intents file: one schema error, or what the checks find."""
    try:
        intents = load_intents(path)
    except IntentsError as exc:
        return [Finding(ERROR, "schema", str(exc))]
    return run_checks(intents)


def has_failures(findings: Iterable[Finding], strict: bool = False) -> bool:
    """Say whether the findings fail the file: any error, or any finding at all when strict."""
    return any(strict or finding.severity == ERROR for finding in findings)


def findings_json(findings: Iterable[Finding]) -> str:
    """Return the findings as a JSON array, for CI annotations."""
    return json.dumps([finding.__dict__ for finding in findings], indent=2, ensure_ascii=False)
