"""The command line as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def forecaster(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def hourly_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four hourly series with a daily cycle, as a long table with ISO times."""
    rng = np.random.default_rng(0)
    t = np.arange(400)
    rows = ["stream,ts,value"]
    for i in range(4):
        v = 50 + 5 * np.sin(2 * np.pi * (t + i) / 24) + rng.normal(0, 0.3, t.size)
        start = np.datetime64("2024-01-01T00")
        rows += [f"s{i},{start + np.timedelta64(int(k), 'h')}Z,{x:.4f}" for k, x in zip(t, v, strict=True)]
    p = tmp_path_factory.mktemp("data") / "hourly.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.slow
def test_train_then_evaluate_writes_checkpoint_json_and_plot(hourly_csv: Path, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    r = forecaster(
        "train",
        "--data",
        str(hourly_csv),
        "--model",
        "gru",
        "--out",
        str(ck),
        "--horizon",
        "6",
        "--d-model",
        "16",
        "--n-layer",
        "1",
        "--epochs",
        "3",
        "--windows-per-epoch",
        "32",
        "--span",
        "64",
        "--burn-in",
        "8",
        "--validation",
        "24",
        "--seed",
        "1",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    config = json.loads((ck / "config.json").read_text())
    assert config["model"]["family"] == "gru" and config["model"]["horizon"] == 6
    assert config["model"]["scaler"]["seasons"] == [24]  # hourly: the day and week tried, only the day is in this data
    assert config["data"]["series"] == 4 and len(config["data"]["hash"]) == 16
    assert set(config["validation"]) >= {"loss", "coverage", "interval_scale"}
    assert config["training"]["seed"] == 1
    assert config["model"]["band_rate"] == 0.02  # each stream's band adapts, by default

    out, png = tmp_path / "m.json", tmp_path / "m.png"
    r = forecaster("evaluate", "--model", str(ck), "--data", str(hourly_csv), "--json", str(out), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["series"] == 4 and m["horizon"] == 6 and m["season"] == 24
    assert 0 <= m["coverage"] <= 1 and m["smape"] > 0 and m["owa"] > 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"

    r = forecaster("evaluate", "--model", str(ck), "--data", str(hourly_csv), "--horizon", "4", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["horizon"] == 4  # its first 4 steps, from 4 values before the end
    r = forecaster("evaluate", "--model", str(ck), "--data", str(hourly_csv), "--horizon", "7")
    assert r.returncode == 2 and "forecasts 6 steps ahead, fewer than --horizon 7" in r.stderr


def test_evaluate_baseline_has_null_coverage(hourly_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "n.json"
    r = forecaster("evaluate", "--model", "naive2", "--data", str(hourly_csv), "--horizon", "24", "--json", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["coverage"] is None and m["owa"] == 1.0 and m["series"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "naive", "--data", "missing.csv"], "missing.csv: no such file"),
        (["evaluate", "--model", "nowhere/ck", "--data", "{csv}"], "no checkpoint at 'nowhere/ck'"),
        (["evaluate", "--model", "naive", "--data", "{csv}", "--horizon", "0"], "--horizon must be at least 1"),
        (["train", "--data", "{csv}", "--model", "lstm", "--out", "{tmp}/x", "--horizon", "0"], "horizon"),
        (["train", "--data", "{csv}", "--model", "lstm", "--out", "{tmp}/x", "--validation", "395"], "too short"),
        (["train", "--data", "{csv}", "--model", "lstm", "--out", "{tmp}/x", "--band-rate", "2"], "band_rate"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(hourly_csv: Path, tmp_path: Path, args: list[str], message: str) -> None:
    r = forecaster(*[a.format(csv=hourly_csv, tmp=tmp_path) for a in args])
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_train_an_ensemble_with_a_chosen_seasonal_form(hourly_csv: Path, tmp_path: Path) -> None:
    ck = tmp_path / "x2"
    small = ["--d-model", "8", "--n-layer", "1", "--epochs", "2", "--windows-per-epoch", "32", "--span", "64"]
    r = forecaster(
        "train", "--data", str(hourly_csv), "--model", "rnn", "--out", str(ck), "--horizon", "6", *small,
        "--members", "2", "--seasonal-form", "multiplicative", "--band-rate", "0", "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "multiplicative" in r.stdout and "best epochs" in r.stdout
    config = json.loads((ck / "config.json").read_text())
    assert config["model"]["members"] == 2 and config["model"]["scaler"]["seasonal_form"] == "multiplicative"
    assert config["model"]["band_rate"] == 0.0  # --band-rate 0: the calibrated band for every stream
    assert [m["seed"] for m in config["training"]["members"]] == [0, 1]
    bad = forecaster("train", "--data", str(hourly_csv), "--model", "rnn", "--out", str(ck), "--seasonal-form", "log")
    assert bad.returncode == 2 and "invalid choice: 'log'" in bad.stderr and "Traceback" not in bad.stderr


def test_serve_compile_is_a_switch_that_defaults_off() -> None:
    from workers.cli import _settings, parser
    from workers.settings import WorkerSettings

    on = _settings(WorkerSettings, parser().parse_args(["serve", "--compile", "--device", "cpu"]))
    off = _settings(WorkerSettings, parser().parse_args(["serve", "--device", "cpu"]))
    assert on.compile is True and off.compile is False and on.device == off.device == "cpu"
