"""A small, synchronous Confluent Schema Registry client (register, fetch by id), cached.

Errors are translated at this boundary: unreachable or 5xx is a ``TransientError`` (retry),
an unknown schema id is a ``SchemaDecodeError`` (the bytes cannot be read: dead-letter
them), a refused schema or credentials is a ``ConfigurationError``. The URL may carry
credentials; only its masked form is ever logged or put in a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import structlog
from pydantic import SecretStr

from core.exceptions import ConfigurationError, SchemaDecodeError, TransientError
from core.settings import mask_url

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryClient:
    """Register value schemas and fetch writer schemas by id; both answers are cached.

    Pass ``client`` to inject an ``httpx.Client`` (a test hands one whose transport is an
    ``httpx.MockTransport``); a client passed in is not closed by :meth:`close`.
    """

    def __init__(
        self, url: SecretStr, *, client: httpx.Client | None = None, timeout_s: float = 5.0
    ) -> None:
        raw = url.get_secret_value()
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"schema registry URL is not http(s): {mask_url(raw)}")
        self.masked_url = mask_url(raw).rstrip("/")
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self._base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._auth = (
            httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
            if parts.username or parts.password
            else None
        )
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """The id of ``schema`` under ``subject``, registering it if the registry lacks it."""
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        body = self._request(
            "POST", f"/subjects/{quote(subject, safe='')}/versions", {"schema": text}, subject
        )
        schema_id = body.get("id")
        if not isinstance(schema_id, int):
            raise TransientError(f"schema registry at {self.masked_url} answered without an id")
        self._ids[(subject, text)] = schema_id
        self._schemas.setdefault(schema_id, dict(schema))
        log.info(
            "schema_registry.registered",
            subject=subject,
            schema_id=schema_id,
            registry=self.masked_url,
        )
        return schema_id

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The Avro schema (parsed JSON) with this id; SchemaDecodeError when there is none."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        body = self._request("GET", f"/schemas/ids/{schema_id}", None, f"schema id {schema_id}")
        schema_type = body.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise SchemaDecodeError(f"schema id {schema_id} is a {schema_type} schema, not Avro")
        try:
            schema = json.loads(body["schema"])
        except (KeyError, TypeError, ValueError) as e:
            raise TransientError(
                f"schema registry at {self.masked_url} answered schema id {schema_id} "
                f"without a readable schema: {e}"
            ) from e
        if not isinstance(schema, dict):
            raise SchemaDecodeError(f"schema id {schema_id} is not an Avro record schema")
        self._schemas[schema_id] = schema
        return schema

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self, method: str, path: str, payload: Mapping[str, Any] | None, what: str
    ) -> dict[str, Any]:
        try:
            response = self._client.request(
                method,
                self._base + path,
                json=payload,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
            )
        except httpx.TransportError as e:
            raise TransientError(
                f"schema registry at {self.masked_url} is unreachable: {type(e).__name__}"
            ) from e
        if response.is_success:
            try:
                body = response.json()
            except ValueError as e:
                raise TransientError(
                    f"schema registry at {self.masked_url} answered {what} with non-JSON"
                ) from e
            if not isinstance(body, dict):
                raise TransientError(f"schema registry at {self.masked_url} answered {what} oddly")
            return body
        raise self._error(response, what)

    def _error(self, response: httpx.Response, what: str) -> Exception:
        status = response.status_code
        message = f"schema registry at {self.masked_url} answered {status} for {what}"
        detail = _error_message(response)
        if detail:
            message = f"{message}: {detail}"
        if status >= 500 or status == 429:
            return TransientError(message)
        if status == 404 and what.startswith("schema id"):
            return SchemaDecodeError(message)
        if status == 409:
            return ConfigurationError(f"{message} (incompatible with the registered versions)")
        if status in (401, 403):
            return ConfigurationError(f"{message} (check the credentials in the URL)")
        return ConfigurationError(message)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""
