"""A real Prometheus server scrapes a real worker on the embedded broker, and every query of the
Grafana dashboard returns data through Prometheus's HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.integration.helpers import Worker, consume, price_events, publish, wait_for
from workers.broker import BrokerInfo, free_port

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")


def serves_metrics(worker: Worker) -> bool:
    try:
        worker.metrics()
    except OSError:  # not listening yet
        return False
    return True


def query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.skipif(PROMETHEUS is None, reason="the Prometheus server is not installed (Debian package `prometheus`)")
def test_prometheus_answers_every_dashboard_query_from_a_live_worker(
    kafka: BrokerInfo, model_dir: Path, topics: dict[str, str], tmp_path: Path
) -> None:
    worker = Worker(kafka, model_dir, topics, tmp_path)
    # Prometheus's port is picked once the worker holds its own: picked before, it could be the
    # same free port, and whichever bound second failed (CI: the worker, "Address already in use").
    wait_for(lambda: serves_metrics(worker), 60, "the worker's metrics endpoint")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs: [{job_name: forecaster, static_configs: "
        f"[{{targets: ['127.0.0.1:{worker.metrics_port}']}}]}}]\n"
    )
    prom = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        publish(kafka, topics["input"], price_events(8, 20, seed=5))
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
        producer.send(topics["input"], key=b"S0", value=b"{not json")
        producer.flush()
        producer.close()
        consume(kafka, topics["output"], 160)
        # More events keep the rates non-zero while Prometheus gathers its first samples.
        publish(kafka, topics["input"], price_events(8, 20, seed=5, t0=20))
        dashboard = json.loads((ROOT / "deploy/grafana/dashboards/forecaster.json").read_text())
        exprs = [t["expr"].replace("$__rate_interval", "1m") for p in dashboard["panels"] for t in p["targets"]]
        missing = list(exprs)

        def answered() -> bool:
            try:
                missing[:] = [e for e in missing if not query(port, e)]
            except OSError:  # not listening yet
                return False
            return not missing

        wait_for(answered, 90, f"data for every dashboard query (still missing: {missing})")
        assert query(port, "up")[0]["value"][1] == "1"
        dead = query(port, "sum by (reason) (forecaster_invalid_events_total)")
        assert {r["metric"]["reason"]: r["value"][1] for r in dead} == {"invalid_json": "1"}
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        worker.kill()
