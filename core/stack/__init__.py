"""The embedded stack: a Kafka-protocol broker, Postgres and Redis for the default set-up.

``scoreline stack up`` uses what the environment configures (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, ``REDIS_URL``) and checks that it answers; for each URL left unset it
uses the machine's own service when one answers on the default port, and otherwise starts
one under ``.scoreline/``. It records what it started in ``.scoreline/stack.json`` so that
``scoreline stack down`` stops exactly that and nothing else.
"""

from core.stack.stack import ServiceStatus, ServiceUrls, Stack, resolve_urls

__all__ = ["ServiceStatus", "ServiceUrls", "Stack", "resolve_urls"]
