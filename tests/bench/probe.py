"""Latency probes shared by the benchmarks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from sinks.redis_layout import board_key, decode_score


class BoardProbe:
    """When each member of a board first shows its final total in Redis.

    With ``every=n`` it follows every n-th member of ``want`` (in its order) only: the
    probe runs on the same two cores as the pipeline, and looking up 20,000 pending lines
    ten times a second cost the benchmark's process 1.2-2.3 CPU-s per run (5-9% of the
    machine). A tenth of a board's members still gives 1,000 latencies for a 10,000-member
    league; :func:`board_is_final` checks every line once the run is over.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        board_id: str,
        want: dict[str, Decimal],
        *,
        every: int = 1,
    ) -> None:
        self.redis = redis
        self.key = board_key(prefix, board_id)
        self.pending = dict(list(want.items())[::every])
        self.seen: list[float] = []

    @property
    def done(self) -> bool:
        return not self.pending

    async def sample(self, t0: float) -> None:
        """One look at the board (ZMSCORE of the members not final yet)."""
        if not self.pending:
            return
        members = list(self.pending)
        scores = await self.redis.zmscore(self.key, members)
        now = time.perf_counter() - t0
        for member, score in zip(members, scores, strict=True):
            if score is not None and decode_score(score)[0] == self.pending[member]:
                del self.pending[member]
                self.seen.append(now)

    def percentile_ms(self, q: float) -> int:
        ordered = sorted(self.seen)
        return round(ordered[max(int(len(ordered) * q) - 1, 0)] * 1000)

    def __repr__(self) -> str:
        return f"{self.key}: {len(self.pending)} pending"


async def board_is_final(
    redis: aioredis.Redis, prefix: str, board_id: str, want: dict[str, Decimal]
) -> bool:
    """Whether the board's lines in Redis are exactly ``want`` (member -> total)."""
    lines = await redis.zrange(board_key(prefix, board_id), 0, -1, withscores=True)
    return {member: decode_score(score)[0] for member, score in lines} == want


async def follow(probes: Sequence[BoardProbe], t0: float, timeout: float) -> None:
    """Sample ``probes`` every 100 ms until every followed line is final."""
    while not all(probe.done for probe in probes):
        for probe in probes:
            await probe.sample(t0)
        if time.perf_counter() - t0 > timeout:
            pytest.fail(f"board lines not final after {timeout} s: {list(probes)}")
        await asyncio.sleep(0.1)  # sampling interval of the latency probe, not a wait
