"""The engine through the public API: batching, isolation, scaling, snapshots, eviction, growth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import forecaster
from forecaster import Forecast, InvalidEventError, SnapshotError
from forecaster.models import ScalerConfig
from tests.conftest import events, random_walks

SMALL = {"d_model": 16, "n_layer": 2, "d_ff": 32, "window": 8, "horizon": 4}
# The streaming contracts hold with every kind of per-stream state: none, additive or multiplicative
# seasons, and a level weight, with or without a drift, each stream chooses for itself (then with
# the most state: MOST).
SCALERS = {
    "plain": ScalerConfig(),
    "additive": ScalerConfig(seasons=(3, 7), lags=2),
    "multiplicative": ScalerConfig(seasons=(3, 7), lags=2, seasonal_form="multiplicative"),
    "own_forecast": ScalerConfig(
        seasons=(3, 7), lags=2, seasonal_form="multiplicative", level_choices=(0.05, 0.8), drift=True
    ),
}


@pytest.fixture(params=list(SCALERS))
def scaler(request: pytest.FixtureRequest) -> ScalerConfig:
    return SCALERS[request.param]


MOST = {"blend": 0.3, "blend_power": 2.0, "band_rate": 0.1}


def build(family: str, **options) -> forecaster.Forecaster:
    scaler = options.get("scaler")
    if scaler is not None and scaler.level_choices and "blend" not in options:
        options |= MOST  # the most state: own forecasts, blended per stream, and each stream's band
    return forecaster.build(family, seed=0, device="cpu", **{**SMALL, **options})


def points(out: list[Forecast]) -> np.ndarray:
    return np.array([[f.point, *f.quantiles.values()] for f in out])


def run(fc: forecaster.Forecaster, batches: list[list[dict]]) -> np.ndarray:
    return np.stack([points(fc.update(b)) for b in batches])


def test_update_returns_one_forecast_per_event_in_input_order() -> None:
    fc = build("lstm")
    batch = [
        {"stream": "AAPL", "ts": 1.0, "value": 185.6},
        {"stream": "MSFT", "ts": "2024-01-02T14:30:00Z", "value": 370.0},
        {"stream": "AAPL", "ts": 2.0, "value": 186.0, "extra": "ignored"},
    ]
    out = fc.update(batch)
    assert [(f.stream, f.ts) for f in out] == [("AAPL", 1.0), ("MSFT", 1704205800.0), ("AAPL", 2.0)]
    f = out[0]
    assert f.model == "lstm" and f.horizon == 4 and len(f.point) == 4
    assert list(f.quantiles) == ["0.1", "0.5", "0.9"] and all(len(v) == 4 for v in f.quantiles.values())
    assert f.source is None and f.produced_at > 1.7e9
    assert sorted(fc.streams) == ["AAPL", "MSFT"]
    assert Forecast.model_validate_json(f.model_dump_json()) == f


def test_several_events_of_one_stream_in_a_batch_apply_in_order(family: str, scaler: ScalerConfig) -> None:
    values = random_walks(3, 6, seed=4)
    batches = events(values)
    one_by_one = run(build(family, scaler=scaler), batches)
    together = points(build(family, scaler=scaler).update([e for b in batches for e in b]))  # time-major
    assert np.array_equal(together.reshape(one_by_one.shape), one_by_one)
    flat = [e for b in batches for e in b]
    skewed = [e for e in flat if e["stream"] == "s0"] + [e for e in flat if e["stream"] != "s0"]  # s0 first, 6 deep
    got = {
        (e["stream"], e["ts"]): p
        for e, p in zip(skewed, points(build(family, scaler=scaler).update(skewed)), strict=True)
    }
    want = {(e["stream"], e["ts"]): p for e, p in zip(flat, one_by_one.reshape(-1, *one_by_one.shape[2:]), strict=True)}
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_stream_forecasts_do_not_depend_on_batch_mates(family: str, scaler: ScalerConfig) -> None:
    target = random_walks(1, 12, seed=5)
    others = random_walks(1000, 12, seed=6, start=50.0)
    alone = run(build(family, scaler=scaler), events(target, ["target"]))[:, 0]
    mixed_fc = build(family, scaler=scaler)
    names = [f"o{i}" for i in range(500)] + ["target"] + [f"o{i}" for i in range(500, 1000)]
    mixed = run(mixed_fc, events(np.concatenate([others[:500], target, others[500:]]), names))[:, 500]
    # Batched matmuls may block differently for 1 vs 1001 rows: equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(mixed, alone, rtol=1e-6, atol=0)


def test_forecasts_scale_with_the_values(family: str, scaler: ScalerConfig) -> None:
    values = random_walks(5, 20, seed=7)
    base = run(build(family, scaler=scaler), events(values))
    scaled = run(build(family, scaler=scaler), events(1000.0 * values))
    np.testing.assert_allclose(scaled, 1000.0 * base, rtol=1e-4)


def test_snapshot_restore_continues_exactly(family: str, scaler: ScalerConfig) -> None:
    batches = events(random_walks(20, 30, seed=8))
    fc = build(family, scaler=scaler)
    run(fc, batches[:15])
    blob = fc.snapshot()
    assert isinstance(blob, bytes)
    fresh = build(family, scaler=scaler)
    fresh.restore(blob)
    assert fresh.streams == fc.streams
    assert np.array_equal(run(fresh, batches[15:]), run(fc, batches[15:]))


def test_restore_keeps_event_time_order_checks() -> None:
    fc = build("gru")
    fc.update([{"stream": "a", "ts": 10.0, "value": 1.0}])
    other = build("gru")
    other.restore(fc.snapshot())
    with pytest.raises(InvalidEventError, match="duplicate"):
        other.update([{"stream": "a", "ts": 10.0, "value": 2.0}])


@pytest.mark.parametrize(
    ("other", "message"),
    [({"family": "rnn"}, "family"), ({"horizon": 6}, "horizon"), ({"seed": 1}, "version")],
)
def test_restore_refuses_state_of_another_model(other: dict, message: str) -> None:
    fc = build("lstm")
    fc.update(events(random_walks(3, 1))[0])
    target = forecaster.build(
        other.get("family", "lstm"),
        seed=other.get("seed", 0),
        device="cpu",
        **{**SMALL, **{k: v for k, v in other.items() if k not in ("family", "seed")}},
    )
    with pytest.raises(SnapshotError, match=message):
        target.restore(fc.snapshot())


@pytest.mark.parametrize("blob", [b"", b"garbage" * 10, b"PK\x03\x04" + b"\x00" * 100])
def test_restore_of_corrupt_bytes_is_a_value_error_and_keeps_state(blob: bytes) -> None:
    fc = build("rnn")
    fc.update([{"stream": "a", "ts": 1.0, "value": 5.0}])
    with pytest.raises(ValueError, match="snapshot"):
        fc.restore(blob)
    assert fc.streams == ["a"]


def test_truncated_snapshot_is_refused() -> None:
    fc = build("rnn")
    fc.update(events(random_walks(4, 1))[0])
    blob = fc.snapshot()
    with pytest.raises(SnapshotError):
        build("rnn").restore(blob[: len(blob) // 2])


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"stream": "x", "ts": 5.0, "value": float("nan")}, "non_finite"),
        ({"stream": "x", "ts": 5.0, "value": float("inf")}, "non_finite"),
        ({"stream": "x", "ts": 5.0, "value": True}, "invalid_schema"),
        ({"stream": "x", "ts": 5.0, "value": "1.5"}, "invalid_schema"),
        ({"stream": "x", "ts": 5.0, "value": None}, "invalid_schema"),
        ({"stream": "x", "ts": 5.0}, "invalid_schema"),
        ({"stream": "", "ts": 5.0, "value": 1.0}, "invalid_schema"),
        ({"stream": "x" * 257, "ts": 5.0, "value": 1.0}, "invalid_schema"),
        ({"stream": 7, "ts": 5.0, "value": 1.0}, "invalid_schema"),
        ({"stream": "x", "ts": "yesterday", "value": 1.0}, "invalid_schema"),
        ({"stream": "x", "ts": False, "value": 1.0}, "invalid_schema"),
        ({"stream": "a", "ts": 1.0, "value": 1.0}, "duplicate"),
        ({"stream": "a", "ts": 0.5, "value": 1.0}, "out_of_order"),
        ("not an event", "invalid_schema"),
    ],
)
def test_bad_event_rejects_the_whole_batch_and_changes_nothing(bad: object, reason: str) -> None:
    batches = events(random_walks(2, 3, seed=9), ["a", "b"], t0=0.0)
    seasonal = SCALERS["own_forecast"]  # the most state a stream carries
    fc, twin = build("lstm", scaler=seasonal), build("lstm", scaler=seasonal)
    fc.update([{"stream": "a", "ts": 1.0, "value": 100.0}])
    twin.update([{"stream": "a", "ts": 1.0, "value": 100.0}])
    good = [{"stream": "b", "ts": 1.0, "value": 3.0}, {"stream": "c", "ts": 1.0, "value": 4.0}]
    with pytest.raises(ValueError) as err:
        fc.update([*good, bad])
    assert isinstance(err.value, InvalidEventError)
    assert err.value.index == 2 and err.value.reason == reason
    assert str(err.value).startswith(f"event 2: {reason}")
    assert fc.streams == ["a"]
    later = [[{**e, "ts": e["ts"] + 100} for e in b] for b in batches]
    assert np.array_equal(run(fc, later), run(twin, later))


def test_out_of_order_within_one_batch_is_rejected() -> None:
    fc = build("rnn")
    with pytest.raises(InvalidEventError) as err:
        fc.update([{"stream": "a", "ts": 2.0, "value": 1.0}, {"stream": "a", "ts": 1.0, "value": 1.0}])
    assert (err.value.index, err.value.reason) == (1, "out_of_order")
    assert fc.streams == []


def test_stream_cap_evicts_least_recently_used_first() -> None:
    fc = build("gru", max_streams=3)
    for i, s in enumerate(["a", "b", "c", "a", "d"]):
        fc.update([{"stream": s, "ts": float(i), "value": 1.0 + i}])
    assert fc.streams == ["c", "a", "d"]  # b was least recently used
    assert fc.evictions == 1
    with pytest.raises(ValueError, match="max_streams"):
        fc.update([{"stream": s, "ts": 99.0, "value": 1.0} for s in "wxyz"])
    assert fc.streams == ["c", "a", "d"]


def test_idle_streams_are_evicted_and_restart_fresh() -> None:
    now = [0.0]
    fc = build("lstm", idle_timeout=60.0, clock=lambda: now[0])
    first = fc.update([{"stream": "a", "ts": 1.0, "value": 10.0}])[0]
    fc.update([{"stream": "a", "ts": 2.0, "value": 11.0}, {"stream": "b", "ts": 2.0, "value": 5.0}])
    now[0] = 30.0
    fc.update([{"stream": "b", "ts": 3.0, "value": 5.5}])
    now[0] = 61.0  # a last seen at 0 (> 60 s ago), b at 30
    again = fc.update([{"stream": "b", "ts": 4.0, "value": 6.0}])
    assert fc.streams == ["b"] and fc.evictions == 1 and len(again) == 1
    back = fc.update([{"stream": "a", "ts": 0.5, "value": 10.0}])[0]  # forgotten: even its old ts is new
    assert back.point == first.point


def test_pool_grows_past_its_initial_capacity(family: str) -> None:
    values = random_walks(100, 4, seed=10)
    small = build(family, capacity=4)
    assert np.array_equal(run(small, events(values)), run(build(family, capacity=1024), events(values)))
    assert len(small.streams) == 100


def test_evicted_slots_are_reused_with_fresh_state() -> None:
    fc = build("transformer", max_streams=2)
    ref = build("transformer")
    for i, s in enumerate(["a", "b", "c", "d"]):
        out = fc.update([{"stream": s, "ts": float(i), "value": 50.0}])
        assert out[0].point == ref.update([{"stream": s, "ts": float(i), "value": 50.0}])[0].point
    assert fc.evictions == 2


def test_bytes_per_stream_counts_every_state_tensor() -> None:
    assert build("rnn").bytes_per_stream == 2 * 16 * 4 + 3 * 8 + 8  # h, scaler, counter
    assert build("lstm").bytes_per_stream == 2 * 2 * 16 * 4 + 3 * 8 + 8


def test_empty_batch_is_a_no_op() -> None:
    fc = build("rnn")
    assert fc.update([]) == [] and fc.streams == []


def test_single_event_instead_of_a_list_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="list of events"):
        build("rnn").update({"stream": "a", "ts": 1.0, "value": 1.0})


def test_unknown_device_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        forecaster.build("rnn", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            forecaster.build("rnn", device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(family: str, scaler: ScalerConfig) -> None:
    batches = events(random_walks(50, 10, seed=11))
    blend = MOST if scaler.level_choices else {}
    gpu = forecaster.build(family, seed=0, device="cuda", scaler=scaler, **blend, **SMALL)
    assert all(t.device.type == "cuda" for t in gpu._engine.pool.tensors.values())
    cpu = build(family, scaler=scaler, **blend)
    np.testing.assert_allclose(run(gpu, batches), run(cpu, batches), rtol=1e-5)


def test_partial_snapshot_merges_into_another_instance_and_forget_drops(family: str) -> None:
    batches = events(random_walks(6, 20, seed=12))
    fc = build(family)
    run(fc, batches[:10])
    part = fc.snapshot(["s0", "s3", "missing"])
    other = build(family)
    run(other, events(random_walks(2, 3, seed=13), ["x", "y"]))
    other.restore(part, merge=True)
    assert sorted(other.streams) == ["s0", "s3", "x", "y"]
    later = [[e for e in b if e["stream"] in ("s0", "s3")] for b in batches[10:]]
    assert np.array_equal(run(other, later), run(fc, later))
    other.forget(["x", "s0"])
    assert sorted(other.streams) == ["s3", "y"] and other.evictions == 0


def test_a_base_and_deltas_of_changed_and_dropped_streams_restore_the_live_state(
    family: str, scaler: ScalerConfig
) -> None:
    """The worker's incremental snapshots: a full snapshot, then per interval only the streams
    updated since (and those evicted since, as ``dropped``), merged in order, equal the live
    instance, LRU order included; a dropped stream that comes back starts fresh."""
    batches = events(random_walks(6, 30, seed=14))
    fc = build(family, scaler=scaler, max_streams=5)  # six streams, room for five: one is evicted along the way
    run(fc, [[e for e in b if e["stream"] != "s5"] for b in batches[:5]])
    chain = [fc.snapshot()]
    for lo in range(5, 30, 5):
        before = set(fc.streams)
        part = [
            [e for e in b if e["stream"] in ({"s0", "s1"} if lo % 10 else {"s2", "s5"})] for b in batches[lo : lo + 5]
        ]
        run(fc, part)
        changed = {e["stream"] for b in part for e in b}
        chain.append(fc.snapshot(changed, dropped=before - set(fc.streams)))
    assert fc.evictions > 0
    rebuilt = build(family, scaler=scaler, max_streams=5)
    for blob in chain:
        rebuilt.restore(blob, merge=True)
    assert rebuilt.streams == fc.streams  # LRU order too: the next eviction picks the same stream
    later = events(random_walks(5, 4, seed=15), ["s0", "s1", "s2", "s4", "s3"], t0=1.8e9)
    assert np.array_equal(run(rebuilt, later), run(fc, later))


def test_an_ensemble_keeps_the_streaming_contracts(family: str) -> None:
    """Members with their own states, one shared scaler state: isolation, scale, snapshots."""
    options = {"members": 2, "scaler": SCALERS["multiplicative"]}
    batches = events(random_walks(8, 24, seed=16))
    fc = build(family, **options)
    assert {k.split(".")[0] for k in fc._engine.pool.tensors if "." in k} == {"m0", "m1"}
    full = run(fc, batches)
    alone = run(build(family, **options), [[e for e in b if e["stream"] == "s3"] for b in batches])[:, 0]
    np.testing.assert_allclose(full[:, 3], alone, rtol=1e-6)
    scaled = run(build(family, **options), [[{**e, "value": 1000.0 * e["value"]} for e in b] for b in batches])
    np.testing.assert_allclose(scaled, 1000.0 * full, rtol=1e-4)
    half = build(family, **options)
    run(half, batches[:12])
    again = build(family, **options)
    again.restore(half.snapshot())
    assert np.array_equal(run(again, batches[12:]), full[12:])
