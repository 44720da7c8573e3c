"""The one error tree of Scoreline.

ScorelineError
 ├── ConfigurationError        a setting is missing or wrong; fix the environment
 ├── StackError                the embedded stack could not start, stop or be reached
 │   └── ServiceUnreachableError   a configured URL does not answer (URL masked)
 ├── TopicDriftError           a topic on the broker differs from the catalog
 ├── TransientError            retry with backoff
 │   └── SinkUnavailableError
 └── PoisonRecordError         dead-letter it, keep going
     └── SchemaDecodeError     bytes that are not a value of a known schema
"""

from __future__ import annotations


class ScorelineError(Exception):
    """Root of every error Scoreline raises on purpose."""


class ConfigurationError(ScorelineError):
    """A setting is missing or invalid."""


class StackError(ScorelineError):
    """The embedded stack failed to start, stop or answer."""


class ServiceUnreachableError(StackError):
    """A service at a configured URL does not answer. The message names the masked URL."""

    def __init__(self, service: str, masked_url: str, reason: str, hint: str = "") -> None:
        self.service = service
        self.masked_url = masked_url
        self.reason = reason
        message = f"{service} at {masked_url} is unreachable: {reason}"
        if hint:
            message = f"{message}. {hint}"
        super().__init__(message)


class TopicDriftError(ScorelineError):
    """A topic on the broker does not match the catalog."""


class TransientError(ScorelineError):
    """Worth retrying with backoff."""


class SinkUnavailableError(TransientError):
    """A sink's store (Postgres, Redis) is down or refused the write."""


class PoisonRecordError(ScorelineError):
    """A record that can never be processed: dead-letter it and keep going."""


class SchemaDecodeError(PoisonRecordError):
    """Bytes that do not decode as a value of a known schema."""
