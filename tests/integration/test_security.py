"""Security defaults on live processes: what listens where, and SASL settings reaching the broker
without the password reaching the output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import SERVE, Worker, tracebacks, wait_for
from workers.broker import BrokerInfo

pytestmark = pytest.mark.kafka


def listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(
                    ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)) if len(address) == 8 else address
                )
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_the_metrics_endpoint_and_the_embedded_broker_listen_on_localhost_only(
    kafka: BrokerInfo, worker: Worker
) -> None:
    wait_for(lambda: "worker started" in worker.log_path.read_text(), 60, "the worker started")
    wait_for(lambda: bool(listening(worker.metrics_port)), 30, "the metrics endpoint")
    assert listening(worker.metrics_port) == {"127.0.0.1"}
    assert listening(kafka.port) == {"127.0.0.1"}


def test_sasl_settings_reach_the_broker_and_the_password_never_shows(kafka: BrokerInfo, tmp_path: Path) -> None:
    secret = "s3cr3t-hunter2"
    options = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "forecaster",
        "sasl_plain_password": secret,
        "bootstrap_timeout_ms": "3000",
    }
    flags = [arg for k, v in options.items() for arg in ("--kafka-option", f"{k}={v}")]
    run = subprocess.run(
        [*SERVE, "--bootstrap", kafka.bootstrap, "--metrics-port", "0", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    # The embedded broker has no SASL: its refusal of the handshake proves the settings were used.
    assert "SaslHandshake failed" in output
    assert run.returncode == 2 and run.stderr.splitlines()[-1].startswith("forecaster: error: Kafka:")
    assert secret not in output and not tracebacks(output)
