"""What can be checked of the deployment without a Docker engine: the compose file, the
Prometheus config and the Grafana dashboard agree with each other and with the worker."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from forecaster.metrics import Metrics
from workers.cli import parser
from workers.settings import WorkerSettings

yaml = pytest.importorskip("yaml")
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/forecaster.json").read_text())
DESIGN_METRICS = {
    "forecaster_events_total",
    "forecaster_invalid_events_total",
    "forecaster_forecasts_total",
    "forecaster_e2e_latency_seconds",
    "forecaster_inference_seconds",
    "forecaster_batch_size",
    "forecaster_active_streams",
    "forecaster_consumer_lag",
    "forecaster_realized_error",
    "forecaster_interval_coverage_ratio",
}


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics.create(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_compose_has_kraft_kafka_workers_publisher_prometheus_and_grafana() -> None:
    services = COMPOSE["services"]
    assert {"kafka", "topics", "worker", "publisher", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / "deploy/Dockerfile").is_file() and (ROOT / "deploy/compose.gpu.yml").is_file()
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            assert (ROOT / volume.split(":")[0]).exists(), volume


def worker_settings() -> tuple[WorkerSettings, object]:
    worker = COMPOSE["services"]["worker"]
    args = parser().parse_args(worker["command"])  # every flag is one `forecaster serve` takes
    flags = {k: getattr(args, k) for k in WorkerSettings.model_fields if k != "kafka"}
    env = {k: str(v) for k, v in worker["environment"].items()}
    assert all(k.removeprefix("FORECASTER_").lower() in WorkerSettings.model_fields for k in env), env
    return WorkerSettings.load(flags, env=env), args


def test_the_worker_command_and_environment_are_valid_settings_and_topics_exist() -> None:
    settings, _ = worker_settings()
    assert settings.metrics_host == "0.0.0.0"  # reachable by Prometheus inside the compose network
    assert settings.bootstrap == "kafka:9092"
    created = re.findall(r"--topic (\S+)", COMPOSE["services"]["topics"]["command"][0])
    assert {settings.input, settings.output, settings.dead_letters, settings.state_topic} <= set(created)
    publisher = parser().parse_args(COMPOSE["services"]["publisher"]["command"])
    assert publisher.topic == settings.input and publisher.synthetic


def test_prometheus_scrapes_every_worker_replica_on_its_metrics_port() -> None:
    settings, _ = worker_settings()
    (job,) = PROMETHEUS["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == settings.metrics_port
    assert str(settings.metrics_port) in COMPOSE["services"]["worker"]["expose"]
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in COMPOSE["services"]["prometheus"]["ports"]


def test_every_dashboard_query_names_exported_metrics_and_every_design_metric_is_shown() -> None:
    exported = exported_names()
    used = set()
    for expr in dashboard_exprs():
        names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"forecaster_[a-z0-9_]+", expr)}
        assert names and names <= exported, (expr, names - exported)
        used |= names
    assert DESIGN_METRICS <= exported
    assert DESIGN_METRICS <= used
    titles = " ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for word in ("latency", "throughput", "batch", "inference", "streams", "lag", "dead letters", "error", "coverage"):
        assert word in titles


def test_every_port_compose_publishes_is_bound_to_localhost() -> None:
    published = [(name, port) for name, svc in COMPOSE["services"].items() for port in svc.get("ports", [])]
    assert published, "compose publishes no port"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_install_reads_every_kafka_compression_codec() -> None:
    """The image installs the project as the README's set-up does: its dependencies must bring
    every codec a publisher may use, or a compressed batch cannot be read at all."""
    from kafka import codec

    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
    for name in ("gzip", "snappy", "lz4", "zstd"):
        encode, decode = getattr(codec, f"{name}_encode"), getattr(codec, f"{name}_decode")
        assert decode(encode(b'{"stream": "AAPL"}' * 50)) == b'{"stream": "AAPL"}' * 50
