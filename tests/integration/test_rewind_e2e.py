"""Rewinds by an operator change nothing: a scored round, rewound three ways, equals the oracle.

A small round (6 matches, one corrected, 400 members; 15% of the guesses delivered after
their match was scored) runs through the real poller, worker and sinks until Postgres and
Redis equal the oracle. Then, each time with the roles
stopped and ``scoreline offsets reset --execute`` run as an operator would:

1. the worker's group is rewound to the earliest offsets and the worker restarted;
2. the worker's group and the boards stage's group are rewound to a moment in the middle
   of the round (``--to-datetime``) and the worker and the boards stage restarted;
3. each sink (``sink:postgres``, ``sink:redis``) is rewound to the earliest offsets and
   the sinks restarted.

After each, once every consumer has caught up again, Postgres and Redis equal the oracle
(nothing doubled) and ``scores`` read_committed carries no idempotency key twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from core import kafka
from core.ops.exceptions import UnknownGroupError
from core.ops.groups import GroupView, describe_group
from core.ops.tap import TapOptions, tap
from core.settings import Settings
from producers.clock import ManualClock
from producers.simulator import publish_entries, publish_simulation, register_leagues
from schemas.catalog import FIXTURES_MATCHES
from schemas.codec import AvroCodec
from schemas.records import PredictionPlaced
from streams.app import app_id
from tests.builders import KICKOFF
from tests.e2e import RoundScenario, a_round, create_topics, football_poller, play
from tests.oracle import differences, nonzero, postgres_boards, redis_boards, scores_topic
from tests.processes import Role, Run, scoreline
from tests.support import eventually

CONVERGE_S = 240


def boards_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}scoreline-boards"  # streams.boards.BoardsProcessor.group_id


def caught_up(view: GroupView) -> bool:
    """Every partition the group reads or committed has no record left to read."""
    return bool(view.partitions) and all(
        p.lag == 0 if p.committed is not None else p.stable_end == 0 for p in view.partitions
    )


async def wait_caught_up(settings: Settings, group: str) -> None:
    last: list[GroupView] = []

    async def done() -> bool:
        try:
            view = await describe_group(settings, group)
        except UnknownGroupError:  # no offsets committed yet
            return False
        last[:] = [view]
        return caught_up(view)

    try:
        await eventually(done, timeout=CONVERGE_S, interval=1.0, what=f"{group} caught up")
    except AssertionError as e:
        behind = [p for view in last for p in view.partitions if p.lag != 0]
        raise AssertionError(f"{e}; behind: {behind}") from None


async def settled(settings: Settings, *, worker: bool = True) -> None:
    """Wait until the worker, the boards stage and both sinks have read everything."""
    groups = [app_id(settings), boards_group(settings)] if worker else []
    for group in [*groups, "sink:postgres", "sink:redis"]:
        await wait_caught_up(settings, group)


async def assert_equals_oracle(
    settings: Settings, database_url: str, expected: Any, roles: dict[str, Role], when: str
) -> None:
    assert settings.redis_url is not None
    got = nonzero(await postgres_boards(database_url))
    assert got == expected, (
        f"{when}: Postgres != oracle: {differences(got, expected)}\n"
        f"worker:\n{roles['worker'].tail()}\nsinks:\n{roles['sinks'].tail()}"
    )
    cached = nonzero(
        await redis_boards(settings.redis_url.get_secret_value(), settings.redis_prefix)
    )
    assert cached == expected, f"{when}: Redis != oracle: {differences(cached, expected)}"
    on_topic, keys = await scores_topic(settings)
    twice = sorted(key for key, n in keys.items() if n > 1)
    assert twice == [], f"{when}: {len(twice)} awards twice on scores, e.g. {twice[:3]}"
    assert nonzero(on_topic) == expected, f"{when}: scores != oracle"


async def reset(settings: Settings, group: str, *args: str) -> Run:
    result = await scoreline(
        settings,
        "offsets",
        "reset",
        "--group",
        group,
        *args,
        "--execute",
        "--remove-static-members",
        "--grace-seconds",
        "4",
        "--format",
        "json",
    )
    assert result.code == 0, result
    return result


async def middle_of_the_round(settings: Settings) -> datetime:
    """The median timestamp of the match updates the poller published."""
    stamps: list[str] = []
    options = TapOptions(FIXTURES_MATCHES, start="beginning", follow=False)
    await tap(settings, options, lambda line: stamps.append(line["timestamp"]))
    assert len(stamps) >= 4
    return sorted(datetime.fromisoformat(s) for s in stamps)[len(stamps) // 2]


async def publish_late(settings: Settings, guesses: Sequence[PredictionPlaced]) -> None:
    codec = AvroCodec.from_settings(settings)
    out = kafka.producer(settings)
    await out.start()
    try:
        assert await publish_entries(out, codec, guesses, settings.topic_prefix) == len(guesses)
    finally:
        await out.stop()
        codec.close()


@pytest.fixture(scope="module")
def scenario() -> RoundScenario:
    return a_round(seed=5, matches=6, members=400, leagues=8)


async def test_rewinds_of_the_worker_and_the_sinks_change_nothing(
    settings: Settings, database_url: str, scenario: RoundScenario, roles: dict[str, Role]
) -> None:
    expected = nonzero(scenario.oracle)
    await create_topics(settings)
    await register_leagues(database_url, scenario.entries.leagues)
    # 15% of the guesses (placed before kick-off) are delivered after their match was
    # scored: they are scored on arrival, the path a rewound worker must not repeat.
    guesses = scenario.entries.predictions
    cut = len(guesses) * 85 // 100
    await publish_simulation(settings, replace(scenario.entries, predictions=guesses[:cut]))
    for role in roles.values():
        role.start()
    clock = ManualClock(KICKOFF)
    async with football_poller(settings, database_url, scenario.season, clock) as poller:
        results = await play(poller, clock, scenario.poll_times())
        assert sum(r.published for r in results) > 0
    await publish_late(settings, guesses[cut:])
    await settled(settings)
    await assert_equals_oracle(settings, database_url, expected, roles, "scored")

    # 1. The worker's group back to the earliest offsets, the worker restarted.
    worker_group = app_id(settings)
    roles["worker"].stop()
    rewound = (await reset(settings, worker_group, "--to-earliest")).json()
    assert rewound["static_members"], "the stopped worker was still listed: removed"
    assert {p["new"] for p in rewound["partitions"]} == {0}
    assert any(p["current"] for p in rewound["partitions"])
    roles["worker"].start()
    await settled(settings)
    await assert_equals_oracle(settings, database_url, expected, roles, "worker to earliest")

    # 2. The worker's and the boards stage's groups back to the middle of the round.
    middle = await middle_of_the_round(settings)
    roles["worker"].stop()
    roles["boards"].stop()
    at = middle.astimezone(UTC).isoformat()
    plan = (await reset(settings, worker_group, "--to-datetime", at)).json()["partitions"]
    mid = [p for p in plan if p["earliest"] < p["new"] < p["end"]]
    assert mid, f"no partition rewound to the middle: {plan}"
    await reset(settings, boards_group(settings), "--to-datetime", at)
    roles["worker"].start()
    roles["boards"].start()
    await settled(settings)
    await assert_equals_oracle(settings, database_url, expected, roles, "worker to the middle")

    # 3. Each sink back to the earliest offsets, the sinks restarted.
    roles["sinks"].stop()
    for sink in ("sink:postgres", "sink:redis"):
        moved = (await reset(settings, sink, "--to-earliest")).json()["partitions"]
        assert any(p["current"] for p in moved) and {p["new"] for p in moved} == {0}
        described = await describe_group(settings, sink)
        assert described.total_lag > 0, f"{sink} has everything to read again"
    roles["sinks"].start()
    await settled(settings, worker=False)
    await assert_equals_oracle(settings, database_url, expected, roles, "sinks to earliest")
