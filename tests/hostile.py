"""Hostile input shared by the library's and the live worker's tests: hypothesis strategies of
record values, and Kafka record batches that cannot be read."""

from __future__ import annotations

import json
import struct
import time

from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

# JSON-ish values where numbers belong: nulls, booleans, NaN/±inf, huge integers, long strings, nesting.
scalars = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.text(max_size=50)
    | st.just("x" * 10_000)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner))
field = st.sampled_from(["stream", "ts", "value"])
events = st.dictionaries(field | st.text(max_size=10), values | st.floats(1e8, 2e9) | st.text(min_size=1), max_size=5)


def records() -> st.SearchStrategy[bytes]:
    """Raw record values: random bytes, invalid UTF-8, nested JSON, events with hostile fields."""
    return st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=50).map(lambda b: b"\xff\xfe" + b),
        st.integers(1, 200_000).map(lambda d: b"[" * d + b"]" * d),
        st.integers(1, 5_000).map(lambda d: b'{"a":' * d + b"1" + b"}" * d),
        values.map(lambda v: json.dumps(v).encode()),  # json.dumps writes NaN/Infinity literals
        events.map(lambda e: json.dumps(e).encode()),
        st.just(b'{"stream": "a", "ts": 1.7e9, "value": ' + b"9" * 5000 + b"}"),
        st.just(b'{"stream": "a", "ts": 1.7e9, "value": "' + b"9" * (1 << 20) + b'"}'),  # 1 MB
    )


CRC_AT, ATTRIBUTES_AT = 17, 21  # in a v2 record batch (Kafka's protocol guide)


def record_batch(
    records: list[tuple[bytes | None, bytes | None]],
    *,
    corrupt_crc: bool = False,
    gzip_garbage: bool = False,
    timestamp_ms: int | None = None,
    base_offset: int = 0,
) -> bytes:
    """A v2 batch of (key, value) records from ``base_offset`` (a broker sets it on append),
    timestamped ``timestamp_ms`` (default now; -1: none, as some publishers leave it).
    ``corrupt_crc``: a payload byte flipped after the CRC was taken; ``gzip_garbage``: flagged
    gzip, but the payload is not gzip."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    for i, (key, value) in enumerate(records):
        builder.append(i, timestamp=stamp, key=key, value=value, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)  # outside the CRC
    attributes = struct.unpack_from(">h", raw, ATTRIBUTES_AT)[0]
    if gzip_garbage:
        attributes |= 1
    struct.pack_into(">h", raw, ATTRIBUTES_AT, attributes)
    struct.pack_into(">I", raw, CRC_AT, calc_crc32c(bytes(raw[ATTRIBUTES_AT:])))
    if corrupt_crc:
        raw[-2] ^= 0xFF
    return bytes(raw)
