"""Backoff with full jitter, the circuit breaker, and conditional GETs (httpx.MockTransport)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.exceptions import TransientError
from producers.exceptions import CircuitOpenError, ProviderRequestError, ProviderUnavailableError
from producers.http import (
    BreakerState,
    CircuitBreaker,
    ConditionalFetcher,
    RetryPolicy,
    delays,
)

BASE = "http://provider.test"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state  # a call, so mypy does not narrow the property between checks


# -- backoff -----------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.integers(1, 12),
    st.floats(0, 2, allow_nan=False),
    st.floats(0, 60, allow_nan=False),
    st.integers(0, 2**32),
)
def test_full_jitter_stays_under_the_exponential_cap(
    attempts: int, base: float, extra: float, seed: int
) -> None:
    policy = RetryPolicy(max_attempts=attempts, base_delay=base, max_delay=base + extra)
    waits = delays(policy, random.Random(seed))
    assert len(waits) == attempts - 1
    for retry, wait in enumerate(waits):
        assert 0.0 <= wait <= min(policy.max_delay, base * 2**retry)
    assert waits == delays(policy, random.Random(seed)), "same seed, same delays"


def test_without_jitter_the_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=3.0, jitter=False)
    assert delays(policy, random.Random(1)) == (0.5, 1.0, 2.0, 3.0, 3.0)


def test_jitter_spreads_the_delays() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=1.0, max_delay=1.0)
    rng = random.Random(7)
    firsts = {round(delays(policy, rng)[0], 6) for _ in range(50)}
    assert len(firsts) > 40


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"base_delay": 2.0, "max_delay": 1.0}],
)
def test_a_nonsense_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- circuit breaker -------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_heals_after_a_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, clock=clock, name="unit")
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call()
    assert isinstance(caught.value, TransientError)
    assert caught.value.retry_in_s == pytest.approx(10.0)

    clock.now += 9.9
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 0.1
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.before_call()
    breaker.record_failure()  # the trial failed: open again, for a whole timeout
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 10.0
    breaker.before_call()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


# -- conditional fetcher ----------------------------------------------------------------


class Provider:
    """A scripted provider: answers from ``script`` in order, then ``default``."""

    def __init__(self, *script: httpx.Response | Exception, default: httpx.Response) -> None:
        self.script = list(script)
        self.default = default
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer


def a_fetcher(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    policy: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
) -> tuple[ConditionalFetcher, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url=BASE)
    fetcher = ConditionalFetcher(
        client,
        retry=policy or RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0),
        breaker=breaker or CircuitBreaker(failure_threshold=10, name="unit"),
        rng=random.Random(42),
        sleep=sleep,
    )
    return fetcher, slept


def etag_server(requests: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        return httpx.Response(200, content=b'{"events": []}', headers={"ETag": '"v1"'})

    return handle


async def test_an_etag_is_sent_back_only_once_the_fetch_is_committed() -> None:
    requests: list[httpx.Request] = []
    fetcher, _ = a_fetcher(etag_server(requests))
    first = await fetcher.fetch("/api/v1/sport/football/events/live")
    assert (first.status, first.body, first.etag) == (200, b'{"events": []}', '"v1"')
    assert first.url == f"{BASE}/api/v1/sport/football/events/live"
    assert first.fetched_at.utcoffset() == timedelta(0)

    again = await fetcher.fetch("/api/v1/sport/football/events/live")
    assert again.status == 200, "not committed: the body was not processed, fetch it whole"
    assert "if-none-match" not in requests[1].headers

    fetcher.commit(again)
    assert fetcher.etag_for("/api/v1/sport/football/events/live") == '"v1"'
    unchanged = await fetcher.fetch("/api/v1/sport/football/events/live")
    assert requests[2].headers["if-none-match"] == '"v1"'
    assert unchanged.not_modified and unchanged.body is None
    other = await fetcher.fetch("/api/v1/event/1")
    assert other.status == 200 and "if-none-match" not in requests[3].headers


async def test_5xx_and_transport_errors_are_retried_with_the_policys_delays() -> None:
    provider = Provider(
        httpx.Response(503),
        httpx.ConnectError("refused"),
        default=httpx.Response(200, content=b"{}"),
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0)
    fetcher, slept = a_fetcher(provider, policy=policy)
    fetched = await fetcher.fetch("/x")
    assert (fetched.status, fetched.attempts, len(provider.requests)) == (200, 3, 3)
    assert tuple(slept) == delays(policy, random.Random(42))


async def test_retries_give_up_after_max_attempts() -> None:
    provider = Provider(default=httpx.Response(500))
    fetcher, slept = a_fetcher(provider)
    with pytest.raises(ProviderUnavailableError, match="failed 3 time") as caught:
        await fetcher.fetch("/x")
    assert isinstance(caught.value, TransientError)
    assert "HTTP 500" in caught.value.last_error
    assert len(provider.requests) == 3 and len(slept) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_a_4xx_is_not_retried(status: int) -> None:
    provider = Provider(default=httpx.Response(status))
    breaker = CircuitBreaker(failure_threshold=1, name="unit")
    fetcher, slept = a_fetcher(provider, breaker=breaker)
    with pytest.raises(ProviderRequestError) as caught:
        await fetcher.fetch("/missing")
    assert caught.value.status == status
    assert len(provider.requests) == 1 and slept == []
    assert state_of(breaker) is BreakerState.CLOSED, "a wrong request says nothing of the provider"


async def test_429_is_retried_after_its_retry_after_capped_by_max_delay() -> None:
    provider = Provider(
        httpx.Response(429, headers={"Retry-After": "2"}),
        httpx.Response(429, headers={"Retry-After": "120"}),
        default=httpx.Response(200, content=b"{}"),
    )
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5.0)
    fetcher, slept = a_fetcher(provider, policy=policy)
    assert (await fetcher.fetch("/x")).status == 200
    assert slept == [2.0, 5.0]


async def test_the_circuit_opens_and_then_stops_calling_the_provider() -> None:
    clock = FakeClock()
    provider = Provider(default=httpx.Response(502))
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock, name="unit")
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.01)
    fetcher, slept = a_fetcher(provider, policy=policy, breaker=breaker)

    with pytest.raises(ProviderUnavailableError, match="circuit now open"):
        await fetcher.fetch("/x")
    assert len(provider.requests) == 2 and len(slept) == 1
    assert state_of(breaker) is BreakerState.OPEN

    with pytest.raises(CircuitOpenError):
        await fetcher.fetch("/x")
    assert len(provider.requests) == 2, "an open circuit sends nothing"

    clock.now += 30.0
    provider.default = httpx.Response(200, content=b"{}")
    assert (await fetcher.fetch("/x")).status == 200
    assert len(provider.requests) == 3
    assert state_of(breaker) is BreakerState.CLOSED
