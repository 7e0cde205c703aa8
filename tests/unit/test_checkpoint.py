from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import forecaster
from forecaster import CheckpointError

EVENTS = [{"stream": "a", "ts": float(i), "value": 100.0 + i} for i in range(5)]


def test_saved_checkpoint_loads_and_forecasts_the_same(tmp_path: Path, family: str) -> None:
    fc = forecaster.build(family, seed=3, device="cpu", d_model=16, window=8)
    fc.save(tmp_path / "ck", metadata={"note": "test"})
    loaded = forecaster.load(tmp_path / "ck", device="cpu")
    assert loaded.version == fc.version and loaded.config == fc.config
    assert [f.point for f in loaded.update(EVENTS)] == [f.point for f in fc.update(EVENTS)]
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["note"] == "test"


def test_version_changes_with_the_weights() -> None:
    assert forecaster.build("gru", seed=0).version != forecaster.build("gru", seed=1).version
    assert forecaster.build("gru", seed=0).version == forecaster.build("gru", seed=0).version


def test_missing_checkpoint_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="give a checkpoint directory or one of rnn, lstm"):
        forecaster.load(tmp_path / "nope")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_weights_are_never_unpickled(tmp_path: Path) -> None:
    forecaster.build("rnn", seed=0).save(tmp_path)

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    (tmp_path / "weights.pt").write_bytes(pickle.dumps({"kind": Boom()}))
    with pytest.raises(CheckpointError, match="weights.pt"):
        forecaster.load(tmp_path)


@pytest.mark.parametrize(
    "config",
    [
        "{not json",
        json.dumps({"format": "other"}),
        json.dumps({"format": "forecaster-checkpoint/1", "model": {"family": "cnn"}}),
    ],
)
def test_bad_config_is_a_checkpoint_error(tmp_path: Path, config: str) -> None:
    forecaster.build("rnn", seed=0).save(tmp_path)
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(CheckpointError):
        forecaster.load(tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    forecaster.build("rnn", seed=0, d_model=16).save(tmp_path / "a")
    forecaster.build("rnn", seed=0, d_model=32).save(tmp_path / "b")
    (tmp_path / "a" / "weights.pt").write_bytes((tmp_path / "b" / "weights.pt").read_bytes())
    with pytest.raises(CheckpointError, match="size mismatch"):
        forecaster.load(tmp_path / "a")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's, about the foreign pickle below
def test_a_checkpoint_as_one_blob_round_trips_and_a_tampered_one_is_refused(tmp_path: Path) -> None:
    from forecaster.checkpoint import checkpoint_bytes, checkpoint_from_bytes
    from forecaster.state import tensorfile

    fc = forecaster.build("lstm", seed=4, device="cpu", d_model=16, horizon=4)
    fc.save(tmp_path / "ck")
    model, meta = checkpoint_from_bytes(checkpoint_bytes(tmp_path / "ck"))
    assert meta["version"] == fc.version and forecaster.Forecaster(model, "cpu").version == fc.version
    meta, weights = tensorfile.loads(checkpoint_bytes(tmp_path / "ck"), "forecaster-checkpoint/1")
    weights = {k: v + 1e-3 for k, v in weights.items()}  # other weights under this version
    with pytest.raises(CheckpointError, match="not those of version"):
        checkpoint_from_bytes(tensorfile.dumps("forecaster-checkpoint/1", meta, weights))
    assert checkpoint_from_bytes(checkpoint_bytes("lstm"))[1]["version"] == forecaster.load("lstm").version
    with pytest.raises(CheckpointError, match="not a readable"):
        checkpoint_from_bytes(pickle.dumps({"kind": "forecaster-checkpoint/1"}))
