"""Talking to providers: retries with backoff, a circuit breaker, conditional GETs.

- :class:`RetryPolicy` and :func:`delays`: exponential backoff with *full jitter* (AWS
  architecture blog, "Exponential Backoff And Jitter"): the wait before retry ``n``
  (0-based) is uniform in ``[0, min(max_delay, base_delay * 2**n)]``.
- :class:`CircuitBreaker`: closed -> open after ``failure_threshold`` consecutive failed
  attempts -> half-open once ``reset_timeout`` has passed (calls are let through as
  trials) -> closed on a success, open again on a failure. While open, calls raise
  :class:`CircuitOpenError` without touching the network.
- :class:`ConditionalFetcher`: GET with ``If-None-Match``. A 5xx, a 429 or a transport
  error is a failed attempt, retried per the policy (honouring a ``Retry-After`` in
  seconds, up to ``max_delay``); any other 4xx raises :class:`ProviderRequestError` at
  once. The ETag of a 200 is only remembered when the caller :meth:`commits
  <ConditionalFetcher.commit>` the fetch, after it has processed the body: a fetch whose
  processing failed is fetched again in full, never answered 304.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import httpx
from prometheus_client import Counter, Gauge

from core.logging import get_logger
from producers.exceptions import CircuitOpenError, ProviderRequestError, ProviderUnavailableError

log = get_logger("poller")

RETRIES = Counter(
    "scoreline_poller_http_retries_total",
    "Provider requests sent again after a 5xx, a 429 or a transport error.",
    ["circuit"],
)
CIRCUIT_STATE = Gauge(
    "scoreline_poller_circuit_state",
    "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
    ["circuit"],
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a failed attempt (delays in seconds)."""

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    jitter: bool = True  # full jitter; False waits the whole exponential cap

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(
                f"need 0 <= base_delay <= max_delay, got {self.base_delay}, {self.max_delay}"
            )


def delays(policy: RetryPolicy, rng: random.Random) -> tuple[float, ...]:
    """The waits before attempts 2..max_attempts. Pure, given a seeded ``rng``."""
    waits: list[float] = []
    for retry in range(policy.max_attempts - 1):
        cap = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry, 62))
        waits.append(rng.uniform(0.0, cap) if policy.jitter else cap)
    return tuple(waits)


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Stops calling a provider that keeps failing; tries again after ``reset_timeout`` s."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "provider",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        CIRCUIT_STATE.labels(name).set(0)

    @property
    def state(self) -> BreakerState:
        """The state now; an open circuit whose timeout has passed turns half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go out now."""
        if self.state is BreakerState.OPEN:
            remaining = self.reset_timeout - (self._clock() - self._opened_at)
            raise CircuitOpenError(self.name, max(0.0, remaining))

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        if state is self._state and state is not BreakerState.OPEN:
            return
        log.warning(
            "circuit.state",
            operation="breaker",
            circuit=self.name,
            state=state.value,
            failures=self._failures,
        )
        self._state = state
        CIRCUIT_STATE.labels(self.name).set(_GAUGE_VALUE[state])


@dataclass(frozen=True, slots=True)
class Fetched:
    """One answered GET: ``body`` is ``None`` on a 304 (nothing new)."""

    url: str
    status: int
    body: bytes | None
    etag: str | None
    fetched_at: datetime
    attempts: int = 1

    @property
    def not_modified(self) -> bool:
        return self.status == httpx.codes.NOT_MODIFIED


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


@dataclass
class ConditionalFetcher:
    """GETs through an injected ``httpx.AsyncClient``, with ETags, retries and a breaker."""

    client: httpx.AsyncClient
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], datetime] = _utcnow
    _etags: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def etag_for(self, url: str) -> str | None:
        return self._etags.get(str(self.client.build_request("GET", url).url))

    def commit(self, fetched: Fetched) -> None:
        """Remember the ETag of a processed 200, so the next GET may be answered 304."""
        if fetched.status != httpx.codes.OK:
            return
        if fetched.etag:
            self._etags[fetched.url] = fetched.etag
        else:
            self._etags.pop(fetched.url, None)

    async def fetch(self, url: str) -> Fetched:
        """GET ``url``; 200 and 304 return, the rest raise (see the module docstring)."""
        waits = delays(self.retry, self.rng)
        last_error = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            self.breaker.before_call()
            request = self.client.build_request("GET", url)
            key = str(request.url)
            etag = self._etags.get(key)
            if etag is not None:
                request.headers["If-None-Match"] = etag
            retry_after: float | None = None
            try:
                response = await self.client.send(request)
            except httpx.RequestError as e:
                last_error = f"{type(e).__name__}: {e}"
            else:
                status = response.status_code
                if status < 400:
                    self.breaker.record_success()
                    return Fetched(
                        url=key,
                        status=status,
                        body=None if status == httpx.codes.NOT_MODIFIED else response.content,
                        etag=response.headers.get("etag"),
                        fetched_at=self.now(),
                        attempts=attempt,
                    )
                if status != httpx.codes.TOO_MANY_REQUESTS and status < 500:
                    self.breaker.record_success()  # the provider is up; the request is wrong
                    raise ProviderRequestError(key, status)
                last_error = f"HTTP {status}"
                retry_after = _retry_after(response)
            self.breaker.record_failure()
            log.warning(
                "fetch.failed", operation="fetch", url=key, attempt=attempt, error=last_error
            )
            if self.breaker.state is BreakerState.OPEN:
                raise ProviderUnavailableError(key, attempt, f"{last_error}; circuit now open")
            if attempt < self.retry.max_attempts:
                RETRIES.labels(self.breaker.name).inc()
                wait = waits[attempt - 1]
                if retry_after is not None:
                    wait = min(self.retry.max_delay, max(wait, retry_after))
                await self.sleep(wait)
        raise ProviderUnavailableError(str(url), self.retry.max_attempts, last_error)
