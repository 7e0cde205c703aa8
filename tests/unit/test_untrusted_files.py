"""Checkpoints and snapshots from outside: corrupt, truncated, foreign or booby-trapped files get
a clear error and never run code (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

import forecaster
from forecaster import CheckpointError
from forecaster.errors import SnapshotError


class Trap:
    """Unpickling this writes a file: the proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "code ran"))


def small(family: str = "gru", horizon: int = 3) -> forecaster.Forecaster:
    return forecaster.build(family, seed=0, device="cpu", d_model=8, n_layer=1, horizon=horizon)


def payloads(tmp_path: Path) -> dict[str, bytes]:
    trap = Trap(tmp_path / "pwned")
    saved = io.BytesIO()
    torch.save({"kind": trap}, saved)  # a real torch file whose unpickling runs code
    return {"pickle": pickle.dumps(trap), "torch.save": saved.getvalue()}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_booby_trapped_checkpoint_or_snapshot_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    small().save(tmp_path / "ck")
    for name, blob in payloads(tmp_path).items():
        (tmp_path / "ck" / "weights.pt").write_bytes(blob)
        with pytest.raises(CheckpointError, match="weights.pt"):
            forecaster.load(tmp_path / "ck")
        with pytest.raises(SnapshotError):
            small().restore(blob)
        assert not (tmp_path / "pwned").exists(), name


@pytest.mark.parametrize("cut", [0, 1, 100, -1])
def test_truncated_weights_are_a_checkpoint_error(tmp_path: Path, cut: int) -> None:
    small().save(tmp_path)
    weights = (tmp_path / "weights.pt").read_bytes()
    (tmp_path / "weights.pt").write_bytes(weights[:cut] if cut >= 0 else weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="bad weights.pt"):
        forecaster.load(tmp_path)


def test_a_plain_state_dict_file_is_foreign(tmp_path: Path) -> None:
    fc = small()
    fc.save(tmp_path)
    buf = io.BytesIO()
    torch.save(fc.model.state_dict(), buf)  # tensors only, but not our format
    (tmp_path / "weights.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="bad weights.pt"):
        forecaster.load(tmp_path)


def test_a_checkpoint_of_another_family_or_horizon_cannot_restore_state(tmp_path: Path) -> None:
    fc = small()
    fc.update([{"stream": "a", "ts": 1.0, "value": 5.0}])
    blob = fc.snapshot()
    for name, other in {"lstm": small("lstm"), "h6": small(horizon=6)}.items():
        other.save(tmp_path / name)
        loaded = forecaster.load(tmp_path / name, device="cpu")
        with pytest.raises(SnapshotError, match="family|horizon"):
            loaded.restore(blob)
        assert loaded.streams == []
