"""Security defaults: servers bind to 127.0.0.1, Kafka SASL/SSL settings reach every client,
secrets never reach a log line or an error message."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

import forecaster
from workers import forecast_worker
from workers.broker import HOST
from workers.cli import main
from workers.settings import KafkaSettings, WorkerSettings

SECRET = "s3cr3t-hunter2"
SECURITY = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_plain_username": "forecaster",
    "sasl_plain_password": SECRET,
    "ssl_cafile": "/etc/kafka/ca.pem",
    "ssl_certfile": "/etc/kafka/client.pem",
    "ssl_keyfile": "/etc/kafka/client.key",
    "ssl_password": SECRET,
}


def test_servers_bind_to_localhost_unless_configured() -> None:
    assert WorkerSettings().metrics_host == "127.0.0.1" and HOST == "127.0.0.1"
    assert WorkerSettings(metrics_host="0.0.0.0").metrics_host == "0.0.0.0"


@pytest.mark.parametrize("client", [KafkaConsumer, KafkaProducer, KafkaAdminClient])
def test_security_options_reach_every_kind_of_client(client: type) -> None:
    options = KafkaSettings(bootstrap="k1:9093,k2:9093", kafka=SECURITY).options_for(client)
    assert options["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert {k: options[k] for k in SECURITY} == SECURITY


def test_security_options_from_flags_env_and_file_reach_the_workers_clients(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    made: dict[str, dict] = {}

    class Consumer:  # record what the worker passes: nothing connects
        DEFAULT_CONFIG = KafkaConsumer.DEFAULT_CONFIG

        def __init__(self, **kwargs) -> None:
            made["KafkaConsumer"] = kwargs

    class Sender:  # the producer process's KafkaProducer options
        def __init__(self, config: dict) -> None:
            made["KafkaProducer"] = config

    monkeypatch.setattr(forecast_worker, "KafkaConsumer", Consumer)
    monkeypatch.setattr(forecast_worker, "Sender", Sender)
    file = tmp_path / "settings.json"
    file.write_text(json.dumps({"kafka": {"security_protocol": "SASL_SSL", "sasl_plain_password": SECRET}}))
    settings = WorkerSettings.load({}, str(file), env={"FORECASTER_BOOTSTRAP": "k1:9093"})
    model = forecaster.build("gru", seed=0, device="cpu", d_model=8, n_layer=1, horizon=2)
    forecast_worker.ForecastWorker(settings, model=model)
    for client in ("KafkaConsumer", "KafkaProducer"):
        assert made[client]["security_protocol"] == "SASL_SSL"
        assert made[client]["sasl_plain_password"] == SECRET
        assert made[client]["bootstrap_servers"] == ["k1:9093"]


def test_secrets_never_show_in_settings_logs_or_errors(capsys: pytest.CaptureFixture[str]) -> None:
    settings = WorkerSettings(kafka={**SECURITY, "sasl_oauth_token_provider": None})
    for shown in (str(settings), repr(settings), str(settings.redacted())):
        assert SECRET not in shown and "***" in shown
    assert settings.redacted()["kafka"]["sasl_plain_username"] == "forecaster"  # not a secret: shown
    code = main(["serve", "--kafka-option", f"sasl_plain_password={SECRET}", "--kafka-option", "bogus=1"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown kafka-python option 'bogus'" in err and SECRET not in err
