"""One embedded broker per test session, started through the same code as ``forecaster broker``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import forecaster
from tests.integration.helpers import Worker
from workers import broker


@pytest.fixture(scope="session")
def kafka() -> Iterator[broker.BrokerInfo]:
    info = broker.start(broker.free_port())
    yield info
    broker.stop(info.port)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "gru"
    forecaster.build("gru", seed=0, device="cpu", d_model=16, n_layer=1, horizon=4).save(path)
    return path


@pytest.fixture
def worker(kafka: broker.BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    with Worker(kafka, model_dir, topics, tmp_path) as w:
        yield w


@pytest.fixture
def topics() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "input": f"prices-{tag}",
        "output": f"forecasts-{tag}",
        "dlq": f"dlq-{tag}",
        "state": f"state-{tag}",
        "group": f"g-{tag}",
    }
