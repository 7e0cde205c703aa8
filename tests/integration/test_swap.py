"""``forecaster swap``: a model handed to running workers through the control topic, warmed on the
input history while the serving model serves, then switched to between two batches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kafka import KafkaProducer

import forecaster
from tests.conftest import wait_for
from tests.integration.helpers import SHORT_SESSION, Reader, Worker, price_events, publish, tracebacks
from workers.broker import BrokerInfo
from workers.control import send_swap
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

pytestmark = pytest.mark.kafka
CONTROL = "forecaster.control"  # the default: groups keep the tests apart


def swap(kafka: BrokerInfo, group: str, model: Path, *extra: str) -> subprocess.CompletedProcess:
    command = ["swap", "--bootstrap", kafka.bootstrap, "--group", group, "--model", str(model), *extra]
    return subprocess.run([sys.executable, "-m", "workers.cli", *command], capture_output=True, text=True, timeout=120)


def labelled(worker: Worker, name: str, labels: str) -> float | None:
    """A sample's value by its exact label set as exported (``model="…"``), None if absent."""
    for line in worker.metrics().splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def runs_by_partition(got: list[dict]) -> dict[int, list[str]]:
    """Per input partition, the model versions of its forecasts in offset order, repeats merged."""
    runs: dict[int, list[str]] = {}
    for g in sorted(got, key=lambda g: (g["source"]["partition"], g["source"]["offset"])):
        seen = runs.setdefault(g["source"]["partition"], [])
        if not seen or seen[-1] != g["model_version"]:
            seen.append(g["model_version"])
    return runs


def library(model: Path, events: list[dict]) -> dict[tuple[str, float], list[float]]:
    return {(f.stream, f.ts): f.point for f in forecaster.load(model, device="cpu").update(events)}


def assert_each_exact(got: list[dict], events: list[dict], models: list[Path]) -> None:
    """Every forecast equals its model's (by ``model_version``) library run over every event from the start."""
    want = {version: library(m, events) for version, m in zip(versions(*models), models, strict=True)}
    for g in got:
        np.testing.assert_allclose(g["point"], want[g["model_version"]][g["stream"], g["ts"]], rtol=1e-5)


def candidate(tmp_path: Path, seed: int) -> Path:
    """A small LSTM checkpoint: the model handed over."""
    path = tmp_path / "lstm"
    forecaster.build("lstm", seed=seed, device="cpu", d_model=16, n_layer=1, horizon=4).save(path)
    return path


def versions(*models: Path) -> tuple[str, ...]:
    return tuple(forecaster.load(m, device="cpu").version for m in models)


def in_parts(events: list[dict], size: int = 240) -> list[list[dict]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def keyed_topics(kafka: BrokerInfo, topics: dict[str, str], *more: str) -> None:
    """The input, output (and ``more``) topics, 4 partitions each."""
    names = (topics["input"], topics["output"], *more)
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), dict.fromkeys(names, 4))


def test_a_swap_under_load_serves_the_new_model_as_if_it_had_served_from_the_start(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """A corrupt checkpoint on the control topic is refused with a log line; a real one is warmed
    on the history and takes over mid-stream: every event forecast once, by the old model before
    the switch and by the new one after it, each equal to the library over every event from the
    start. A worker started later serves the new model, whatever its ``--model``; a swap back to
    the old model (a rollback) serves it as if it had never stopped."""
    new = candidate(tmp_path, seed=1)
    old_version, new_version = versions(model_dir, new)
    events = price_events(12, 100, seed=81)
    parts = in_parts(events)  # 5 parts
    keyed_topics(kafka, topics)
    out = Reader(kafka, topics["output"])
    try:
        with Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "20") as w:
            publish(kafka, topics["input"], parts[0])
            wait_for(lambda: len(out.read()) >= 240, 60, "the first forecasts")
            producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
            send_swap(producer, CONTROL, topics["group"], b"\x80\x04 not a checkpoint")
            producer.flush()
            producer.close()
            wait_for(lambda: "refused" in w.log_path.read_text(), 30, "the corrupt checkpoint refused")
            publish(kafka, topics["input"], parts[1])
            done = swap(kafka, topics["group"], new)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("swap ") and new_version in done.stdout
            publish(kafka, topics["input"], parts[2])  # while the new model warms up
            wait_for(lambda: "serving lstm" in w.log_path.read_text(), 60, "the switch")
            wait_for(lambda: len(out.read()) >= 720, 60, "720 forecasts")
            assert w.sample("forecaster_model_swaps_total") == 1
            assert w.sample("forecaster_warmup_records_total") >= 240
            assert w.terminate() == 0
        log = w.log_path.read_text()
        assert "not a readable forecaster-checkpoint" in log and not tracebacks(log)
        with Worker(kafka, model_dir, topics, tmp_path) as later:  # --model says gru: the group serves lstm
            publish(kafka, topics["input"], parts[3])
            wait_for(lambda: len(out.read()) >= 960, 60, "960 forecasts")
            assert f"serving lstm {new_version}, handed over by swap" in later.log_path.read_text()
            assert swap(kafka, topics["group"], model_dir).returncode == 0  # the rollback
            wait_for(lambda: "serving gru" in later.log_path.read_text(), 60, "the rollback")
            publish(kafka, topics["input"], parts[4])
            wait_for(lambda: len(out.read()) >= len(events), 60, "every forecast")
            assert later.terminate() == 0
        got = out.read()
        assert len(got) == len(events) == len({(g["stream"], g["ts"]) for g in got})  # none lost, none twice
        by = {v: [g for g in got if g["model_version"] == v] for v in (old_version, new_version)}
        assert len(by[old_version]) + len(by[new_version]) == len(events)
        assert len(by[old_version]) >= 480 and len(by[new_version]) >= 240  # the switches came mid-stream
        assert {g["model_version"] for g in got if g["ts"] >= parts[4][0]["ts"]} == {old_version}
        for version, model in ((old_version, model_dir), (new_version, new)):
            want = library(model, events)  # every event from the start
            for g in by[version]:
                np.testing.assert_allclose(g["point"], want[g["stream"], g["ts"]], rtol=1e-5)
        runs = runs_by_partition(got)
        assert all(r == [old_version, new_version, old_version] for r in runs.values()), runs  # one switch each way
    finally:
        out.close()


def test_a_sigkill_inside_a_warm_up_or_just_after_a_switch_recovers_exactly(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """Killed while the new model warms up (before the switch: 6,000 records of history to
    replay), the worker comes back serving the new model; the old model's snapshots do not fit it,
    so its partitions replay from their beginning. Killed just after a switch back to the old model
    (a rollback), it comes back serving the old one. Every forecast equals a from-the-start run of
    its model, and none is lost."""
    new = candidate(tmp_path, seed=2)
    old_version, new_version = versions(model_dir, new)
    events = price_events(12, 520, seed=82)
    history, middle, end = events[:6000], events[6000:6120], events[6120:]
    keyed_topics(kafka, topics)
    out = Reader(kafka, topics["output"])
    flags = ("--max-batch", "20", "--snapshot-interval-s", "0.2", *SHORT_SESSION)  # 20 a turn: a warm-up of seconds
    workers = []
    try:
        workers.append(first := Worker(kafka, model_dir, topics, tmp_path, *flags))
        publish(kafka, topics["input"], history)
        wait_for(lambda: len(out.read()) >= len(history), 90, "the history's forecasts")
        assert swap(kafka, topics["group"], new).returncode == 0
        wait_for(lambda: "warming up" in first.log_path.read_text(), 30, "the warm-up")
        first.kill()
        assert "serving lstm" not in first.log_path.read_text()  # killed inside the warm-up
        workers.append(second := Worker(kafka, model_dir, topics, tmp_path, *flags))
        publish(kafka, topics["input"], middle)
        wait_for(lambda: len({(g["stream"], g["ts"]) for g in out.read()}) >= 6120, 90, "the middle's forecasts")
        assert f"serving lstm {new_version}, handed over by swap" in second.log_path.read_text()
        assert swap(kafka, topics["group"], model_dir).returncode == 0  # a rollback
        wait_for(lambda: "serving gru" in second.log_path.read_text(), 60, "the switch back")
        second.kill()  # just after the switch
        workers.append(third := Worker(kafka, model_dir, topics, tmp_path))
        publish(kafka, topics["input"], end)
        wait_for(lambda: len({(g["stream"], g["ts"]) for g in out.read()}) == len(events), 90, "every forecast")
        assert f"serving gru {old_version}, handed over by swap" in third.log_path.read_text()
        assert third.terminate() == 0
        got = out.read()
        assert_each_exact(got, events, [model_dir, new])
        have = {(g["stream"], g["ts"], g["model_version"]) for g in got}  # at least once: a repeat is exact too
        for part, version in ((history, old_version), (middle, new_version), (end, old_version)):
            assert all((e["stream"], e["ts"], version) in have for e in part)
    finally:
        out.close()
        for w in workers:
            w.kill()


def test_a_shadow_model_is_scored_beside_the_serving_one_and_a_swap_of_it_promotes_it_at_once(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """``swap --shadow``: the candidate warms up, then steps on the same events as the serving
    model, scored per model version and published only to the shadow topic, each forecast what
    the library gives over every event from the start. A swap of it without ``--shadow`` promotes
    it between two batches, with no second warm-up, exactly."""
    new = candidate(tmp_path, seed=3)
    old_version, new_version = versions(model_dir, new)
    events = price_events(12, 80, seed=83)
    parts = in_parts(events)  # 4 parts
    shadow_topic = topics["output"] + ".shadow"
    keyed_topics(kafka, topics, shadow_topic)
    out, shadowed = Reader(kafka, topics["output"]), Reader(kafka, shadow_topic)
    try:
        with Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "20", "--shadow-output", shadow_topic) as w:
            publish(kafka, topics["input"], parts[0])
            wait_for(lambda: len(out.read()) >= 240, 60, "the first forecasts")
            done = swap(kafka, topics["group"], new, "--shadow")
            assert done.returncode == 0, done.stderr
            assert "beside the serving model" in done.stdout
            wait_for(lambda: f"shadowing lstm {new_version}" in w.log_path.read_text(), 60, "the shadow's warm-up")
            publish(kafka, topics["input"], parts[1])
            wait_for(lambda: len(out.read()) >= 480 and len(shadowed.read()) >= 240, 60, "forecasts of both")
            shadow_info = f'model="lstm",model_version="{new_version}",role="shadow"'
            assert labelled(w, "forecaster_model_info", shadow_info) == 1
            # every value after a stream's first since the shadow began is scored, for both models
            assert labelled(w, "forecaster_realized_error_count", f'model="{new_version}"') == 240 - 12
            assert labelled(w, "forecaster_realized_error_count", f'model="{old_version}"') == 480 - 12
            assert 0 <= labelled(w, "forecaster_interval_coverage_ratio", f'model="{new_version}"') <= 1
            assert {g["model_version"] for g in out.read()} == {old_version}  # the shadow publishes nowhere else
            assert swap(kafka, topics["group"], new).returncode == 0  # the promotion
            wait_for(lambda: "promoted" in w.log_path.read_text(), 30, "the promotion")
            publish(kafka, topics["input"], parts[2] + parts[3])
            wait_for(lambda: len(out.read()) >= len(events), 60, "every forecast")
            assert labelled(w, "forecaster_model_info", shadow_info) is None
            assert (
                labelled(w, "forecaster_model_info", f'model="gru",model_version="{old_version}",role="serving"')
                is None
            )
            assert labelled(w, "forecaster_realized_error_count", f'model="{old_version}"') is None
            assert w.sample("forecaster_model_swaps_total") == 1
            assert w.terminate() == 0
        log = w.log_path.read_text()
        assert log.count("warming up") == 1 and not tracebacks(log)
        got, shadow_got = out.read(), shadowed.read()
        assert len(got) == len(events) == len({(g["stream"], g["ts"]) for g in got})  # none lost, none twice
        assert len(shadow_got) == 240 and {g["model_version"] for g in shadow_got} == {new_version}
        assert_each_exact(got + shadow_got, events, [model_dir, new])
        assert all(r == [old_version, new_version] for r in runs_by_partition(got).values())
        assert {g["model_version"] for g in got if g["ts"] >= parts[2][0]["ts"]} == {new_version}
    finally:
        out.close()
        shadowed.close()


def test_a_shadow_that_does_better_over_the_window_is_promoted_for_the_group_and_one_that_does_worse_is_not(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """``--promote-window``: a worker serving a poor model (its forecasts off by three scales)
    promotes a better shadow by itself, for the whole group (a worker started later serves it), and
    keeps serving when the poor one comes back as a shadow."""
    poor = tmp_path / "poor"
    fc = forecaster.build("gru", seed=0, device="cpu", d_model=16, n_layer=1, horizon=4)
    with torch.no_grad():
        fc.engine.model.head.bias += 3.0
    fc.save(poor)
    poor_version, good_version = versions(poor, model_dir)
    events = price_events(12, 80, seed=84)
    parts = in_parts(events)  # 4 parts
    keyed_topics(kafka, topics)
    out = Reader(kafka, topics["output"])
    try:
        with Worker(kafka, poor, topics, tmp_path, "--max-batch", "20", "--promote-window", "60") as w:
            publish(kafka, topics["input"], parts[0])
            wait_for(lambda: len(out.read()) >= 240, 60, "the first forecasts")
            assert swap(kafka, topics["group"], model_dir, "--shadow").returncode == 0
            wait_for(lambda: "shadowing" in w.log_path.read_text(), 60, "the shadow's warm-up")
            publish(kafka, topics["input"], parts[1])
            wait_for(lambda: f"serving gru {good_version}" in w.log_path.read_text(), 60, "the promotion")
            assert "promoting it" in w.log_path.read_text()
            assert swap(kafka, topics["group"], poor, "--shadow").returncode == 0
            wait_for(lambda: w.log_path.read_text().count("shadowing") == 2, 60, "the second shadow's warm-up")
            publish(kafka, topics["input"], parts[2])
            verdicts = f"shadow gru {poor_version} against serving gru {good_version}"
            wait_for(lambda: verdicts in w.log_path.read_text(), 60, "a window of the second shadow")
            wait_for(lambda: len(out.read()) >= 720, 60, "720 forecasts")
            assert w.terminate() == 0
        log = w.log_path.read_text()
        assert log.count("promoting it") == 1 and log.count("promoted") == 1 and not tracebacks(log)
        with Worker(kafka, poor, topics, tmp_path) as later:  # the group serves the promoted model
            publish(kafka, topics["input"], parts[3])
            wait_for(lambda: len(out.read()) >= len(events), 60, "every forecast")
            later_log = later.log_path.read_text()
            assert f"serving gru {good_version}, handed over by swap" in later_log
            assert f"warming up gru {poor_version}" in later_log  # and shadows the newest shadow again
            assert later.terminate() == 0
        got = out.read()
        assert len(got) == len(events) == len({(g["stream"], g["ts"]) for g in got})
        assert_each_exact(got, events, [poor, model_dir])
        assert all(r == [poor_version, good_version] for r in runs_by_partition(got).values())
    finally:
        out.close()


def test_a_rebalance_while_shadowing_warms_the_shadow_again_and_a_promotion_reaches_every_worker(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    """A second worker joins while the first shadows a candidate: the first warms it again on the
    partitions it keeps, the second on those it takes over (from the control topic). A plain swap
    of it then promotes it on both, with no further warm-up, and every forecast equals its
    model's library run from the start."""
    new = candidate(tmp_path, seed=4)
    old_version, new_version = versions(model_dir, new)
    events = price_events(12, 80, seed=85)
    parts = in_parts(events)  # 4 parts
    keyed_topics(kafka, topics)
    out = Reader(kafka, topics["output"])
    try:
        with Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "20") as first:
            publish(kafka, topics["input"], parts[0])
            wait_for(lambda: len(out.read()) >= 240, 60, "the first forecasts")
            assert swap(kafka, topics["group"], new, "--shadow").returncode == 0
            wait_for(lambda: "shadowing" in first.log_path.read_text(), 60, "the shadow")
            with Worker(kafka, model_dir, topics, tmp_path, "--max-batch", "20") as second:
                wait_for(lambda: "warming up the shadow model again" in first.log_path.read_text(), 60, "the rebalance")
                wait_for(lambda: "shadowing" in second.log_path.read_text(), 60, "the second shadowing")
                wait_for(lambda: first.log_path.read_text().count("shadowing") == 2, 60, "the first shadowing again")
                publish(kafka, topics["input"], parts[1])
                wait_for(lambda: len({(g["stream"], g["ts"]) for g in out.read()}) >= 480, 60, "480 forecasts")
                assert swap(kafka, topics["group"], new).returncode == 0  # the promotion
                for w in (first, second):
                    wait_for(lambda w=w: "promoted" in w.log_path.read_text(), 30, "the promotion on both")
                publish(kafka, topics["input"], parts[2] + parts[3])
                wait_for(lambda: len({(g["stream"], g["ts"]) for g in out.read()}) == len(events), 60, "all")
                assert second.terminate() == 0
            assert first.terminate() == 0
        for w in (first, second):
            log = w.log_path.read_text()
            assert not tracebacks(log) and f"serving lstm {new_version}" in log
            assert "after replaying 0 records" not in log  # a worker without partitions waits for some
        got = out.read()
        assert_each_exact(got, events, [model_dir, new])
        assert {g["model_version"] for g in got if g["ts"] >= parts[2][0]["ts"]} == {new_version}
    finally:
        out.close()
