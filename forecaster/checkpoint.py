"""Checkpoint directories: ``config.json`` (architecture + metadata) and ``weights.pt``.

Weights load with ``weights_only=True``: a checkpoint from elsewhere cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forecaster.errors import CheckpointError
from forecaster.models import FAMILIES, ForecastModel, ModelConfig
from forecaster.state import tensorfile

FORMAT = "forecaster-checkpoint/1"
WEIGHTS = "weights.pt"
CONFIG = "config.json"
BUNDLED = Path(__file__).parent / "pretrained"


def model_version(model: ForecastModel) -> str:
    """Content hash of the architecture and the weights: changes whenever forecasts could."""
    h = hashlib.sha256(model.config.model_dump_json().encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def save_checkpoint(model: ForecastModel, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and free-form JSON ``metadata``, e.g. training details) to ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    (d / WEIGHTS).write_bytes(tensorfile.dumps(FORMAT, {}, weights))
    config = {"format": FORMAT, "model": model.config.model_dump(mode="json"), "version": model_version(model)}
    (d / CONFIG).write_text(json.dumps({**config, **(metadata or {})}, indent=2) + "\n")
    return d


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint directory, or the bundled one of a family name ("lstm", …)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    if str(name_or_path) in FAMILIES:
        bundled = BUNDLED / str(name_or_path)
        if bundled.is_dir():
            return bundled
        raise CheckpointError(f"no bundled checkpoint for {name_or_path!r} in this install (expected {bundled})")
    raise CheckpointError(
        f"no checkpoint at {str(name_or_path)!r}: give a checkpoint directory or one of {', '.join(FAMILIES)}"
    )


def load_checkpoint(name_or_path: str | Path) -> tuple[ForecastModel, dict[str, Any]]:
    """Model (on the CPU, eval mode) and the checkpoint's config.json as a dict."""
    d = resolve(name_or_path)
    try:
        meta = json.loads((d / CONFIG).read_text())
        weights = (d / WEIGHTS).read_bytes()
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{d}: unreadable checkpoint ({e})") from e
    return _model(meta, weights, str(d))


def checkpoint_bytes(name_or_path: str | Path) -> bytes:
    """A checkpoint as one blob (no pickle), e.g. to send it in a Kafka record; checked first:
    ``CheckpointError`` for anything ``load_checkpoint`` would refuse."""
    model, meta = load_checkpoint(name_or_path)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # the version these weights hash to now (a directory's config.json may predate a config field)
    return tensorfile.dumps(FORMAT, {**meta, "version": model_version(model)}, weights)


def checkpoint_from_bytes(blob: bytes, where: str = "checkpoint record") -> tuple[ForecastModel, dict[str, Any]]:
    """Inverse of ``checkpoint_bytes``, with ``load_checkpoint``'s checks (``weights_only`` loading)."""
    try:
        meta, weights = tensorfile.loads(blob, FORMAT)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from e
    model, meta = _model(meta, weights, where)
    if meta.get("version") != model_version(model):
        raise CheckpointError(f"{where}: the weights are not those of version {meta.get('version')} (altered or torn)")
    return model, meta


def _model(meta: Any, weights: bytes | dict[str, Any], where: str) -> tuple[ForecastModel, dict[str, Any]]:
    """A model from a checkpoint's config and weights (a weights file's bytes, or its tensors)."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{where}: not a forecaster checkpoint (format {got!r}, want {FORMAT!r})")
    try:
        model = ForecastModel(ModelConfig.model_validate(meta.get("model")))
    except ValidationError as e:
        raise CheckpointError(f"{where}: invalid model config: {e.errors()[0]['msg']}") from e
    try:
        tensors = tensorfile.loads(weights, FORMAT)[1] if isinstance(weights, bytes) else weights
        model.load_state_dict(tensors)
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where}: bad {WEIGHTS}: {str(e)[:300]}") from e
    return model.eval(), meta
