"""The rule sets in force, read from the compacted ``rules`` topic.

A version promoted by ``scoreline reprocess --promote`` is published twice in one Kafka
transaction: as the rule set's newest version (key ``ruleset_id``), and as a promotion
record (key ``promoted:<ruleset_id>``, header ``scoreline-promoted``), which compaction
keeps even after newer versions are published. The rule book hands both to the scoring
(``streams.scoring.RulesInForce``): the totals of matches scored before the promotion
reflect the promoted rules, not the ones their match states name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.exceptions import SchemaDecodeError
from core.logging import get_logger
from schemas.codec import AvroCodec
from schemas.records import RuleSet
from streams.exceptions import RuleSetError
from streams.rules.predictions import PredictionRules
from streams.scoring import RulesInForce

log = get_logger("streams.rules")

DEFAULT_VERSION = 0
#: Header of a promotion record on ``rules``; its value is the promoted version.
PROMOTED_HEADER = "scoreline-promoted"


def ruleset_id_for(tournament_id: str) -> str:
    return f"predictions:{tournament_id}"


def promotion_key(ruleset_id: str) -> str:
    """The ``rules`` key of a rule set's promotion record (one per rule set, compacted)."""
    return f"promoted:{ruleset_id}"


def is_promotion(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """Whether a ``rules`` record's headers mark it as a promotion record."""
    return any(name == PROMOTED_HEADER for name, _ in headers or ())


class RuleBook:
    """The newest version of each rule set; ``ready`` once the topic was read to its end."""

    def __init__(self) -> None:
        self._rules: dict[str, PredictionRules] = {}
        self._promoted: dict[str, PredictionRules] = {}
        self.ready = asyncio.Event()

    def apply(self, record: RuleSet, *, promoted: bool = False) -> None:
        """Take a rule set in; ``promoted`` for a promotion record (see the module doc)."""
        try:
            rules = PredictionRules.from_ruleset(record)
        except RuleSetError as e:
            log.warning("rules.rejected", ruleset_id=record.ruleset_id, reason=str(e))
            return
        current = self._rules.get(rules.ruleset_id)
        if current is None or rules.version > current.version:
            self._rules[rules.ruleset_id] = rules
            log.info("rules.applied", ruleset_id=rules.ruleset_id, version=rules.version)
        before = self._promoted.get(rules.ruleset_id)
        if promoted and (before is None or rules.version > before.version):
            self._promoted[rules.ruleset_id] = rules
            log.info("rules.promoted", ruleset_id=rules.ruleset_id, version=rules.version)

    def newest(self, ruleset_id: str) -> PredictionRules | None:
        """The newest version of a rule set, None when none was published."""
        return self._rules.get(ruleset_id)

    def promoted(self, ruleset_id: str) -> PredictionRules | None:
        """The newest promoted version of a rule set, None when none was promoted."""
        return self._promoted.get(ruleset_id)

    def for_tournament(self, tournament_id: str) -> PredictionRules:
        """The tournament's newest rules, else the documented defaults at version 0.

        A :class:`RulesInForce` that also carries the newest promoted version once one was
        promoted.
        """
        ruleset_id = ruleset_id_for(tournament_id)
        found = self._rules.get(ruleset_id)
        rules = found if found is not None else PredictionRules(ruleset_id, DEFAULT_VERSION)
        promoted = self._promoted.get(ruleset_id)
        return rules if promoted is None else RulesInForce.of(rules, promoted)

    async def follow(
        self, consumer: AIOKafkaConsumer, topic: str, codec: AvroCodec, stop: asyncio.Event
    ) -> None:
        """Read the rules topic from its start and keep following it until ``stop``."""
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            self.ready.set()
        idle = 0.05
        while not stop.is_set():
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1000)
            for record in batch.get(tp, []):
                try:
                    decoded = codec.decode(record.value or b"")
                except SchemaDecodeError as e:
                    log.warning("rules.undecodable", offset=record.offset, reason=str(e))
                    continue
                if isinstance(decoded, RuleSet):
                    self.apply(decoded, promoted=is_promotion(record.headers))
            if not self.ready.is_set() and await consumer.position(tp) >= end:
                self.ready.set()
            if batch:
                idle = 0.05
            else:  # the embedded broker answers empty fetches at once: do not spin
                await asyncio.sleep(idle)
                idle = min(idle * 2, 1.0)
