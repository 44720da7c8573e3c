"""The fast decoder gives exactly what the codec gives, for every record on a topic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import CATALOG
from schemas.codec import AvroCodec
from schemas.fast_decode import RecordDecoder
from schemas.records import AvroRecord
from tests.unit.test_codec import records

CODEC = AvroCodec()
#: (schema, a topic it is a value of) for every Avro value in the catalog.
VALUES = sorted({(name, spec.name) for spec in CATALOG for name in spec.value_schemas})
DECODER = RecordDecoder(CODEC, [name for name, _ in VALUES])


@pytest.mark.parametrize(("name", "topic"), VALUES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_decode_equals_the_codec(name: str, topic: str, data: st.DataObject) -> None:
    record: AvroRecord = data.draw(records(name))
    value = CODEC.encode(record, topic)
    assert DECODER(value) == CODEC.decode(value) == record
    assert DECODER(value) == record  # again: now through the caches


def test_the_hot_records_take_the_fast_path() -> None:
    fast = DECODER._fast  # noqa: SLF001 - what the hot paths rely on
    for name in ("ScoreAwarded", "LeaderboardEntryChanged", "PredictionPlaced", "BetSettled"):
        assert CODEC.fingerprint(name) in fast, name
