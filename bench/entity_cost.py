"""Time the default bot's entity extraction per message in-process against the 0.5 ms target.

The default bot (data/intents.json) runs its order-number regex and the built-in ``date`` and
``phone_number`` entities. Messages are the bot's own patterns plus typical answers to its
questions (dates, phone numbers, order numbers), each timed as the dialogue runs it
(``EntityPipeline.extract``, with an intent ranking over the bot's labels as the classifier
passes it), the median of all calls; beside it, in the same run, a bot with no
entities at all, which must cost nothing (no extractor runs).

    .venv/bin/python -m bench.entity_cost [--rounds 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

from chatbot.classifier.config import DEFAULT_DATA_PATH
from chatbot.classifier.extraction import EntityPipeline
from chatbot.data.intents import load_domain, load_intents
from chatbot.data.slots import Domain

TARGET_MS = 0.5
ANSWERS = [
    "next Friday",
    "tomorrow at 5 pm",
    "in 2 weeks",
    "December 24 please",
    "it's (212) 555-0147",
    "call me on +44 20 7946 0958",
    "order ACM-20931",
    "whenever",
]


@dataclasses.dataclass
class _Config:
    language: str = "en"


@dataclasses.dataclass
class _Bundle:
    domain: Domain
    config: _Config = dataclasses.field(default_factory=_Config)
    tagger: None = None


def median_ms(extract: Callable[[str], object], texts: list[str], rounds: int) -> float:
    """Return the median milliseconds of one extraction over every text, ``rounds`` times."""
    timings = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            extract(text)
            timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    """Print the default bot's median cost per message and a bot without entities beside it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    intents = load_intents(DEFAULT_DATA_PATH)
    texts = [pattern for intent in intents for pattern in intent.patterns] + ANSWERS
    ranking = tuple((intent.tag, 1 / len(intents)) for intent in intents)  # what a turn passes on
    default = EntityPipeline.from_bundle(_Bundle(load_domain(DEFAULT_DATA_PATH)))  # type: ignore[arg-type]
    empty = EntityPipeline.from_bundle(_Bundle(Domain()))  # type: ignore[arg-type]

    def default_turn(text: str) -> object:
        return default.extract(text, None, None, ranking)

    def empty_turn(text: str) -> object:
        return empty.extract(text, None, None, ranking)

    for text in texts:  # warm the caches a long-running worker has warm
        default_turn(text)
    default_ms = median_ms(default_turn, texts, args.rounds)
    empty_ms = median_ms(empty_turn, texts, args.rounds)
    answers_ms = median_ms(default_turn, ANSWERS, args.rounds)
    verdict = "meets" if default_ms <= TARGET_MS else "misses"
    print(
        f"default bot, {len(texts)} messages: median {default_ms:.3f} ms per message (target <= {TARGET_MS}: {verdict})"
    )
    print(f"default bot, answers with dates and numbers only: median {answers_ms:.3f} ms")
    print(f"bot without entities: median {empty_ms:.4f} ms ({len(empty.extractors)} extractors run)")


if __name__ == "__main__":
    main()
