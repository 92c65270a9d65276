"""Run all of a bot's entity extractors on a message: declared rules, built-ins, the learned tagger.

Where two extractors find overlapping spans, the earlier one wins: the author's regexes and lookup
tables are the most deliberate, built-in values are normalised, the tagger is a guess. A bot with
none of them runs nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from chatbot.classifier.bundle import Bundle
from chatbot.data.entities import Entity

Extract = Callable[[str, datetime | None], list[Entity]]


class EntityPipeline:
    """A bot's extractors in priority order; build it once per model (it compiles and loads them)."""

    def __init__(self, extractors: list[Extract]) -> None:
        self.extractors = extractors

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> EntityPipeline:
        """Return the pipeline of a bundle's domain and tagger (empty when the bot has neither)."""
        extractors: list[Extract] = []
        if bundle.domain.entities:
            declared = bundle.domain.extractor()
            extractors.append(lambda text, now: declared.extract(text))
        if (builtin := bundle.domain.builtin_extractor(bundle.config.language)) is not None:
            builtin.warm_up()
            extractors.append(builtin.extract)
        if bundle.tagger is not None:
            bundle.tagger.warm_up()
            extractors.append(bundle.tagger.extract)
        return cls(extractors)

    def extract(self, text: str, now: datetime | None = None) -> list[Entity]:
        """Return the entities in a text by position; ``now`` is the conversation's time (for dates)."""
        if not self.extractors:
            return []
        found: list[Entity] = []
        for extract in self.extractors:
            found += [
                entity
                for entity in extract(text, now)
                if all(entity.end <= kept.start or entity.start >= kept.end for kept in found)
            ]
        return sorted(found, key=lambda entity: entity.start)
