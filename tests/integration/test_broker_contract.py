"""What Scoreline relies on from the broker, checked against the session's broker.

The embedded broker lists every aborted transaction of a partition in a fetch response,
ended ones included; without ``contain_stale_aborted_transactions`` a read_committed
consumer that waited at an open transaction loses the next committed transactions of a
producer that was fenced and restarted with the same transactional id (a worker killed
and restarted). This is the exact shape of a kill -9 of the worker.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import Services
from tests.support import eventually, unique

DANGLING = textwrap.dedent(
    """
    import asyncio, os, sys
    from aiokafka import AIOKafkaProducer
    async def main():
        p = AIOKafkaProducer(bootstrap_servers=sys.argv[1], transactional_id=sys.argv[3])
        await p.start()
        await p.begin_transaction()
        for i in range(5):
            await p.send_and_wait(sys.argv[2], value=b"aborted", partition=0)
        os._exit(9)  # killed mid-transaction
    asyncio.run(main())
    """
)


async def test_a_consumer_waiting_at_a_fenced_transaction_gets_the_next_one(
    services: Services,
) -> None:
    name, tid = unique("contract."), unique("tid-")
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    await admin.create_topics([NewTopic(name, 1, 1)])
    await admin.close()
    tp = TopicPartition(name, 0)
    reader = AIOKafkaConsumer(bootstrap_servers=services.kafka, isolation_level="read_committed")
    await reader.start()
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        seen: list[bytes] = []

        async def read() -> list[bytes]:
            batch = await reader.getmany(tp, timeout_ms=100)
            seen.extend(record.value or b"" for record in batch.get(tp, []))
            return seen

        await read()  # waiting at the start while the transaction below is open
        dangling = subprocess.run(  # noqa: S603 - our own script
            [sys.executable, "-c", DANGLING, services.kafka, name, tid], check=False, timeout=60
        )
        assert dangling.returncode == 9
        await read()
        restarted = AIOKafkaProducer(bootstrap_servers=services.kafka, transactional_id=tid)
        await restarted.start()  # fences the dead producer: its transaction is aborted

        async def past_the_abort_marker() -> bool:
            await read()
            position: int = await reader.position(tp)
            return position >= 6  # 5 aborted records and the marker

        await eventually(past_the_abort_marker, timeout=20, what="reader past the abort")
        try:
            async with restarted.transaction():
                for _ in range(5):
                    await restarted.send(name, value=b"committed", partition=0)
        finally:
            await restarted.stop()

        async def five() -> list[bytes] | None:
            await read()
            return seen if len(seen) >= 5 else None

        assert await eventually(five, timeout=20, what="5 records") == [b"committed"] * 5
    finally:
        await reader.stop()
