"""Faust codecs built from the one AvroCodec: ``value_serializer="avro-MatchUpdated"``.

One codec per value schema of the catalog, named :func:`codec_name`. Encoding writes the
record for the topic the catalog puts that schema on (the registry subject depends on it);
decoding accepts either wire format and returns whichever record the bytes hold. Faust is
imported only when the codecs are registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.catalog import CATALOG
from schemas.codec import AvroCodec
from schemas.records import AvroRecord

if TYPE_CHECKING:
    from faust.serializers.codecs import Codec

CODEC_PREFIX = "avro-"


def codec_name(schema_name: str) -> str:
    """The Faust codec name of a value schema, e.g. ``avro-MatchUpdated``."""
    return f"{CODEC_PREFIX}{schema_name}"


def build_codecs(avro: AvroCodec) -> dict[str, Codec]:
    """A Faust codec per value schema of the catalog, by codec name (nothing registered)."""
    codec_class = _codec_class()
    built: dict[str, Codec] = {}
    for spec in CATALOG:
        for schema in spec.value_schemas:
            name = codec_name(schema)
            if name in built:
                raise ValueError(f"{schema} is the value of two topics: one codec cannot name both")
            built[name] = codec_class(avro=avro, schema_name=schema, topic=spec.name)
    return built


def register_codecs(avro: AvroCodec) -> dict[str, Codec]:
    """Build the codecs and register them with Faust; returns them by name."""
    from faust.serializers import codecs

    built = build_codecs(avro)
    for name, codec in built.items():
        codecs.register(name, codec)
    return built


def _codec_class() -> type[Codec]:
    from faust.serializers.codecs import Codec

    class AvroRecordCodec(Codec):
        """Faust codec for one value schema on one catalog topic."""

        def __init__(
            self,
            children: tuple[Codec, ...] | None = None,
            *,
            avro: AvroCodec,
            schema_name: str,
            topic: str,
        ) -> None:
            super().__init__(children, avro=avro, schema_name=schema_name, topic=topic)
            self.avro = avro
            self.schema_name = schema_name
            self.topic = topic

        def _dumps(self, obj: Any) -> bytes:
            if not isinstance(obj, AvroRecord) or obj.schema_name != self.schema_name:
                raise TypeError(
                    f"codec {codec_name(self.schema_name)} encodes {self.schema_name} records, "
                    f"not {type(obj).__name__}"
                )
            return self.avro.encode(obj, self.topic)

        def _loads(self, s: bytes) -> Any:
            return self.avro.decode(s)

    return AvroRecordCodec
