"""Faust's exactly-once defect, fixed: outputs to other partitions commit with the input.

Faust picks a record's transactional producer by its destination partition but commits by
the source partition, so a record sent to partition q while processing partition p is
visible (read_committed) only once source partition q commits. Here every event is on one
source partition (one match) while the awards go to every partition of ``scores`` (keyed
by member): without streams.transactions, those on other partitions never show up.
"""

from __future__ import annotations

from datetime import timedelta

from aiokafka import TopicPartition

from core.kafka import consumer, producer
from core.settings import Settings
from schemas.catalog import ENTRIES_PREDICTIONS, FIXTURES_MATCHES, RULES, SCORES, spec, topic
from schemas.codec import AvroCodec
from schemas.records import Game, RuleSet, ScoreAwarded
from tests.builders import KICKOFF, a_match, a_prediction
from tests.e2e import create_topics
from tests.processes import Role
from tests.support import eventually

GUESSES = 200


async def test_awards_on_other_partitions_commit_with_their_source(
    settings: Settings, roles: dict[str, Role]
) -> None:
    codec = AvroCodec()
    await create_topics(settings)
    out = producer(settings)
    await out.start()
    prefix = settings.topic_prefix
    try:
        rules = RuleSet(
            ruleset_id="predictions:17",
            game=Game.PREDICTIONS,
            version=1,
            params={},
            effective_from=KICKOFF - timedelta(days=1),
        )
        await out.send_and_wait(topic(RULES, prefix), key=b"r", value=codec.encode(rules, RULES))
        for n in range(GUESSES):
            guess = a_prediction(
                entry_id=f"e{n}", member_id=f"m{n:04d}", match_id="1001", guess=(n % 3, 1)
            )
            await out.send(
                topic(ENTRIES_PREDICTIONS, prefix),
                key=b"1001",
                value=codec.encode(guess, ENTRIES_PREDICTIONS),
            )
        final = a_match("1001", score=(2, 1))
        await out.send_and_wait(
            topic(FIXTURES_MATCHES, prefix),
            key=b"1001",
            value=codec.encode(final, FIXTURES_MATCHES),
        )
    finally:
        await out.stop()
    roles["worker"].start()

    reader = consumer(settings)
    await reader.start()
    awards: dict[int, int] = {}
    try:
        tps = [TopicPartition(topic(SCORES, prefix), p) for p in range(spec(SCORES).partitions)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)

        async def all_awards() -> bool:
            assert roles["worker"].alive, roles["worker"].tail()
            batch = await reader.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    assert isinstance(codec.decode(record.value or b""), ScoreAwarded)
                    awards[tp.partition] = awards.get(tp.partition, 0) + 1
            return sum(awards.values()) >= GUESSES

        await eventually(all_awards, timeout=90, what=f"{GUESSES} awards read_committed")
    finally:
        await reader.stop()
    assert sum(awards.values()) == GUESSES
    assert len(awards) >= 3, f"awards should spread over the partitions: {awards}"
