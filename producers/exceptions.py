"""Errors of the producers role, under the one root in :mod:`core.exceptions`.

ScorelineError
 ├── ProviderRequestError          the provider refused the request (4xx but 429): not retried
 ├── ExecutionTransitionError      a poll execution asked for a move its state machine forbids
 ├── TransientError                retry with backoff
 │   ├── ProviderUnavailableError  5xx, 429 or a transport error, after every retry
 │   ├── CircuitOpenError          the provider's circuit is open: not even tried
 │   └── ProducerStateUnavailableError   Postgres (executions, match state) is down
 └── PoisonRecordError             dead-letter it, keep going
     └── MalformedPayloadError     a provider payload that cannot be normalized
"""

from __future__ import annotations

from core.exceptions import PoisonRecordError, ScorelineError, TransientError


class MalformedPayloadError(PoisonRecordError):
    """A provider payload that cannot be normalized: ``field`` says where, ``reason`` what.

    ``field`` is a dotted path from the event (``event.homeScore.current``) or ``body``
    for a response that is not the JSON document the contract promises.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ProviderRequestError(ScorelineError):
    """The provider answered 4xx (but 429): retrying the same request cannot help."""

    def __init__(self, url: str, status: int) -> None:
        self.url = url
        self.status = status
        super().__init__(f"GET {url} answered {status}; not retried")


class ProviderUnavailableError(TransientError):
    """Every attempt failed with a 5xx, a 429 or a transport error."""

    def __init__(self, url: str, attempts: int, last_error: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"GET {url} failed {attempts} time(s); last: {last_error}")


class CircuitOpenError(TransientError):
    """The circuit breaker is open: the request was not sent."""

    def __init__(self, name: str, retry_in_s: float) -> None:
        self.name = name
        self.retry_in_s = retry_in_s
        super().__init__(f"circuit {name!r} is open; next trial in {retry_in_s:.1f}s")


class ProducerStateUnavailableError(TransientError):
    """Postgres, where the pollers keep executions and match state, is unreachable."""


class ExecutionTransitionError(ScorelineError):
    """A poll execution transition the state machine (migration 0001) forbids."""
