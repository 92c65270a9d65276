"""Time entity extraction on 1,000-character messages against the < 0.2 ms target.

The extractor is the default bot's (data/intents.json: the order_number regex) plus a lookup
table of 200 product names with synonyms, the size a small shop would declare. Messages never
repeat, are 1,000 characters (the default message limit) and hold an order number and a product;
ASCII and accented text are timed separately (accented text takes the offset-mapping path).

    .venv/bin/python -m bench.entities [--calls 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from chatbot.classifier.config import DEFAULT_DATA_PATH
from chatbot.data.entities import EntityDefinition, EntityExtractor
from chatbot.data.intents import load_domain

TARGET_MS = 0.2
LENGTH = 1000
FILLER = "where is my order please check the status of it thanks a lot for your help today"


def build_extractor() -> EntityExtractor:
    """Return the default bot's entities plus a 200-product lookup table."""
    products = tuple((f"product {index} deluxe", (f"item{index}", f"thing {index}")) for index in range(200))
    entities = load_domain(DEFAULT_DATA_PATH).entities
    return EntityExtractor((*entities, EntityDefinition("product", lookup=products)))


def messages(count: int, accented: bool, rng: random.Random) -> list[str]:
    """Return never-repeating 1,000-character messages with an order number and a product in them."""
    words = FILLER.split() + (["crème", "brûlée", "déjà"] if accented else [])
    texts = []
    for index in range(count):
        filler = " ".join(rng.choice(words) for _ in range(LENGTH // 4))
        text = f"order ACM-{10000 + index} and item{index % 200} " + filler
        texts.append(text[:LENGTH])
    return texts


def time_extraction(extractor: EntityExtractor, texts: list[str]) -> list[float]:
    """Return the milliseconds each extraction took."""
    timings = []
    for text in texts:
        started = time.perf_counter()
        extractor.extract(text)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    """Print median and p99 extraction time per kind of text, beside the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    extractor = build_extractor()
    rng = random.Random(0)
    for label, accented in (("ascii", False), ("accented", True)):
        texts = messages(args.calls, accented, rng)
        assert all(extractor.extract(text) for text in texts[:10]), "the messages hold entities"
        timings = sorted(time_extraction(extractor, texts))
        median = statistics.median(timings)
        p99 = timings[int(len(timings) * 0.99)]
        verdict = "meets" if median < TARGET_MS else "misses"
        print(
            f"{label:9s} {LENGTH}-char message: median {median:.3f} ms, p99 {p99:.3f} ms "
            f"(target < {TARGET_MS} ms: {verdict})"
        )


if __name__ == "__main__":
    main()
