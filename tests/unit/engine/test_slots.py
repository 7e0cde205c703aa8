"""The slot table on its own: LRU order kept in arrays, eviction, slot reuse, growth."""

from __future__ import annotations

import numpy as np

from forecaster.engine import SlotTable


def table_of(streams: list[str], now: float = 0.0) -> SlotTable:
    table = SlotTable()
    for s in streams:
        table.assign(s, now)
    return table


def test_a_touched_batch_moves_to_the_recent_end_in_its_order() -> None:
    table = table_of(["a", "b", "c", "d"])
    table.touch(table.slots(["c", "a"]), now=1.0)
    assert table.streams == ["b", "d", "c", "a"]
    assert table.in_lru_order(["a", "d", "zzz", "c"]) == ["d", "c", "a"]  # unknown ids left out


def test_lookup_marks_unknown_streams() -> None:
    table = table_of(["a", "b"])
    assert table.lookup(["b", "x", "a"]).tolist() == [1, -1, 0]


def test_lru_eviction_takes_the_least_recently_used() -> None:
    table = table_of(["a", "b", "c", "d", "e"])
    table.touch(table.slots(["a", "b"]), now=1.0)
    assert table.evict_lru(2) == 2
    assert table.streams == ["e", "a", "b"] and "c" not in table and "d" not in table


def test_idle_eviction_takes_the_streams_unused_too_long() -> None:
    table = table_of(["a", "b", "c"], now=0.0)
    table.last_ts["a"] = 5.0
    table.touch(table.slots(["b"]), now=50.0)
    assert table.evict_idle(now=70.0, idle_timeout=60.0) == 2
    assert table.streams == ["b"] and "a" not in table.last_ts


def test_freed_slots_are_reused_before_new_ones_and_the_table_grows() -> None:
    table = table_of([f"s{i}" for i in range(40)])  # past the first arrays' 16 slots
    assert table.high_water == 40 and len(table) == 40
    freed = table.slot("s7")
    table.evict("s7")
    assert table.assign("new", now=1.0) == freed and table.high_water == 40
    assert table.streams[-1] == "new" and table.streams[0] == "s0"
    assert np.array_equal(table.slots(["s0", "new"]), [0, freed])
