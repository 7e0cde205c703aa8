"""One embedded broker per test session, started through the same code as ``forecaster broker``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from workers import broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind((broker.HOST, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka() -> Iterator[broker.BrokerInfo]:
    info = broker.start(free_port())
    yield info
    broker.stop(info.port)
