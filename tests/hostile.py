"""Hypothesis strategies for hostile input, shared by the library's and the live worker's fuzz tests."""

from __future__ import annotations

import json

from hypothesis import strategies as st

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
