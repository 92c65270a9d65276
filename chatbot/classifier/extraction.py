"""Run all of a bot's entity extractors on a message: declared rules, built-ins, the learned tagger.

Where two extractors find overlapping spans, the earlier one wins: the author's regexes and lookup
tables are the most deliberate, built-in values are normalised, the tagger is a guess. A bot with
none of them runs nothing at all. The intent classifier ranks a message before its entities are
extracted, and the tagger reads that ranking: entity types follow the intent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chatbot.classifier.bundle import Bundle
from chatbot.classifier.tagger import IntentRanking
from chatbot.data.entities import Entity

# (text, the conversation's time, its IANA time zone, the intent classifier's ranking of the text)
# -> entities; None: the clock, the bot's zone, no ranking.
Extract = Callable[[str, datetime | None, str | None, IntentRanking | None], list[Entity]]


@dataclass(frozen=True)
class Extractor:
    """One of a bot's extractors: a name for reports, the entity types it may find, and the call."""

    name: str  # "declared", "builtin" or "tagger"
    entities: frozenset[str]
    extract: Extract


class EntityPipeline:
    """A bot's extractors in priority order; build it once per model (it compiles and loads them)."""

    def __init__(self, extractors: list[Extractor]) -> None:
        self.extractors = extractors

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> EntityPipeline:
        """Return the pipeline of a bundle's domain and tagger (empty when the bot has neither)."""
        extractors: list[Extractor] = []
        if bundle.domain.entities:
            declared = bundle.domain.extractor()
            extractors.append(
                Extractor(
                    "declared",
                    frozenset(definition.name for definition in bundle.domain.entities),
                    lambda text, now, time_zone, ranking: declared.extract(text),
                )
            )
        if (builtin := bundle.domain.builtin_extractor(bundle.config.language)) is not None:
            builtin.warm_up()
            extractors.append(
                Extractor(
                    "builtin",
                    frozenset(builtin.names),
                    lambda text, now, time_zone, ranking: builtin.extract(text, now, time_zone),
                )
            )
        if bundle.tagger is not None:
            bundle.tagger.warm_up()
            extractors.append(Extractor("tagger", frozenset(bundle.tagger.entities), bundle.tagger.extract))
        return cls(extractors)

    def extract(
        self,
        text: str,
        now: datetime | None = None,
        time_zone: str | None = None,
        intent_ranking: IntentRanking | None = None,
    ) -> list[Entity]:
        """Return the entities in a text by position; dates are read at the conversation's time
        ``now`` (default: the clock) in its ``time_zone`` (default: the bot's), and the tagger
        guesses entity types from the intent classifier's ``intent_ranking`` of the text (default:
        its own intent head)."""
        if not self.extractors:
            return []
        found: list[Entity] = []
        for extractor in self.extractors:
            found += [
                entity
                for entity in extractor.extract(text, now, time_zone, intent_ranking)
                if all(entity.end <= kept.start or entity.start >= kept.end for kept in found)
            ]
        return sorted(found, key=lambda entity: entity.start)
