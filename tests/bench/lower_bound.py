"""The Python lower bound the benchmarks compare with: a plain aiokafka loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from core.kafka import consumer, producer
from core.settings import Settings

#: One consumed value to the (key, value) the loop produces.
Transform = Callable[[bytes], tuple[bytes, bytes]]


async def aiokafka_loop(
    settings: Settings, name: str, tps: Sequence[TopicPartition], count: int, work: Transform
) -> float:
    """Consume ``count`` records of ``tps``, ``work`` each, produce the result: records/s.

    One read_committed consumer and one idempotent producer (1 MiB batches), writing to a
    fresh topic ``<prefix>bench.<name>``: the same work as the pipeline, with none of it.
    """
    sink = f"{settings.topic_prefix}bench.{name}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(sink, 4, 1)])
    await admin.close()
    reader = consumer(settings)
    out = producer(settings, linger_ms=20, max_batch_size=1 << 20)
    await reader.start()
    await out.start()
    try:
        reader.assign(list(tps))
        await reader.seek_to_beginning(*tps)
        started, done = time.perf_counter(), 0
        while done < count:
            batch = await reader.getmany(timeout_ms=1000, max_records=20_000)
            for records in batch.values():
                for record in records:
                    key, value = work(record.value or b"")
                    await out.send(sink, key=key, value=value)
                    done += 1
        await out.flush()
        return done / (time.perf_counter() - started)
    finally:
        await reader.stop()
        await out.stop()
