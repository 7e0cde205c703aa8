"""The commands users run by hand: publish, watch and the one-command demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from kafka import KafkaProducer

import forecaster
from tests.integration.helpers import consume, price_events, publish
from workers.broker import BrokerInfo
from workers.settings import KafkaSettings
from workers.topics import ensure_topics

pytestmark = pytest.mark.kafka
CLI = [sys.executable, "-m", "workers.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_publish_synthetic_streams_keyed_by_stream_in_time_order(kafka: BrokerInfo, topics: dict[str, str]) -> None:
    done = run(
        "publish", "--bootstrap", kafka.bootstrap, "--topic", topics["input"], "--synthetic",
        "--streams", "5", "--rate", "400", "--duration", "0.5", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sent 200 events of 5 streams")
    records = consume(kafka, topics["input"], 200, parse=lambda v: v)
    events = [json.loads(v) for v in records]
    assert len({e["stream"] for e in events}) == 5 and all(e["value"] > 0 for e in events)
    for s in {e["stream"] for e in events}:
        ts = [e["ts"] for e in events if e["stream"] == s]
        assert ts == sorted(ts) and len(ts) == 40


def test_publish_reports_bad_input_in_one_line(kafka: BrokerInfo) -> None:
    done = run("publish", "--bootstrap", kafka.bootstrap, "--synthetic", "--streams", "3")
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--rate" in done.stderr


def test_watch_prints_the_forecasts_of_one_stream_as_json_lines(kafka: BrokerInfo, topics: dict[str, str]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i in range(6):
        msg = {"stream": f"S{i % 2}", "ts": float(i), "value": 1.0, "point": [1.0], "quantiles": {}, "horizon": 1}
        producer.send(topics["output"], key=msg["stream"].encode(), value=json.dumps(msg).encode())
    producer.send(topics["output"], value=b"not a forecast")
    producer.flush()
    producer.close()
    done = run(
        "watch", "--bootstrap", kafka.bootstrap, "--topic", topics["output"], "--stream", "S1",
        "--json", "--from-beginning", "--max-messages", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(m["stream"], m["ts"]) for m in lines] == [("S1", 1.0), ("S1", 3.0), ("S1", 5.0)]


def test_demo_runs_the_whole_service_and_cleans_up() -> None:
    done = run("demo", "--duration", "25", "--json", "--metrics-port", "0", timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    forecasts = [json.loads(line) for line in lines[:-1] if line.startswith("{")]
    assert forecasts and {f["stream"] for f in forecasts} <= {"AAPL", "FB", "GOOG", "IBM", "MSFT"}
    assert all(len(f["point"]) == 8 and f["model"] == "lstm" for f in forecasts)
    assert "prices in" in lines[-1] and "metrics were at http://127.0.0.1:" in lines[-1]
    leftovers = subprocess.run(["pgrep", "-f", "forecaster-demo-|demo-[0-9]+\\.prices"], capture_output=True)
    assert leftovers.stdout == b""  # the worker and the publisher were stopped


def test_train_from_the_input_topic_equals_training_on_the_same_observations_from_a_file(
    kafka: BrokerInfo, topics: dict[str, str], tmp_path: Path
) -> None:
    """``train --from-topic`` reads the topic's history as the worker would (bad records counted
    and left out) and trains exactly as on a file of the same observations; ``--max-records``
    bounds the read; a topic that does not exist is one line."""
    ensure_topics(KafkaSettings(bootstrap=kafka.bootstrap), {topics["input"]: 4})
    events = price_events(6, 150, seed=70)
    publish(kafka, topics["input"], events)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    producer.send(topics["input"], key=b"S0", value=b"{not json")
    producer.send(topics["input"], key=b"S1", value=json.dumps(events[1]).encode())  # S1's first event again: late
    producer.flush()
    producer.close()
    small = ["--model", "lstm", "--d-model", "16", "--horizon", "4", "--epochs", "2", "--quiet"]
    topic = run(
        "train", "--from-topic", topics["input"], "--bootstrap", kafka.bootstrap, "--out", str(tmp_path / "t"), *small
    )
    assert topic.returncode == 0, topic.stderr
    assert topic.stdout.startswith(f"read {len(events) + 2} records of {topics['input']}: {len(events)} observations")
    assert "1 invalid_json" in topic.stdout and ("1 out_of_order" in topic.stdout or "1 duplicate" in topic.stdout)
    pd.DataFrame(events).to_csv(tmp_path / "same.csv", index=False)
    file = run("train", "--data", str(tmp_path / "same.csv"), "--out", str(tmp_path / "f"), *small)
    assert file.returncode == 0, file.stderr
    a, b = forecaster.load(tmp_path / "t", device="cpu"), forecaster.load(tmp_path / "f", device="cpu")
    assert a.config == b.config
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )
    bounded = run(
        "train", "--from-topic", topics["input"], "--bootstrap", kafka.bootstrap, "--max-records", "400",
        "--out", str(tmp_path / "b"), *small,
    )  # fmt: skip
    assert bounded.returncode == 0, bounded.stderr
    assert bounded.stdout.startswith(f"read 400 records of {topics['input']}")
    missing = run("train", "--from-topic", "no-such-topic", "--bootstrap", kafka.bootstrap, "--out", "x", *small)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "no-such-topic" in missing.stderr
