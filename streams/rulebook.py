"""The rule sets in force, read from the compacted ``rules`` topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.exceptions import SchemaDecodeError
from core.logging import get_logger
from schemas.codec import AvroCodec
from schemas.records import RuleSet
from streams.exceptions import RuleSetError
from streams.rules.predictions import PredictionRules

log = get_logger("streams.rules")

DEFAULT_VERSION = 0


def ruleset_id_for(tournament_id: str) -> str:
    return f"predictions:{tournament_id}"


class RuleBook:
    """The newest version of each rule set; ``ready`` once the topic was read to its end."""

    def __init__(self) -> None:
        self._rules: dict[str, PredictionRules] = {}
        self.ready = asyncio.Event()

    def apply(self, record: RuleSet) -> None:
        try:
            rules = PredictionRules.from_ruleset(record)
        except RuleSetError as e:
            log.warning("rules.rejected", ruleset_id=record.ruleset_id, reason=str(e))
            return
        current = self._rules.get(rules.ruleset_id)
        if current is None or rules.version > current.version:
            self._rules[rules.ruleset_id] = rules
            log.info("rules.applied", ruleset_id=rules.ruleset_id, version=rules.version)

    def for_tournament(self, tournament_id: str) -> PredictionRules:
        """The tournament's newest rules, else the documented defaults at version 0."""
        ruleset_id = ruleset_id_for(tournament_id)
        found = self._rules.get(ruleset_id)
        return found if found is not None else PredictionRules(ruleset_id, DEFAULT_VERSION)

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
                    self.apply(decoded)
            if not self.ready.is_set() and await consumer.position(tp) >= end:
                self.ready.set()
            if batch:
                idle = 0.05
            else:  # the embedded broker answers empty fetches at once: do not spin
                await asyncio.sleep(idle)
                idle = min(idle * 2, 1.0)
