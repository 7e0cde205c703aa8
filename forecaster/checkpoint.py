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
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{d}: unreadable {CONFIG} ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{d}: not a forecaster checkpoint (format {meta.get('format')!r}, want {FORMAT!r})")
    try:
        model = ForecastModel(ModelConfig.model_validate(meta.get("model")))
    except ValidationError as e:
        raise CheckpointError(f"{d}: invalid model config: {e.errors()[0]['msg']}") from e
    try:
        _, weights = tensorfile.loads((d / WEIGHTS).read_bytes(), FORMAT)
        model.load_state_dict(weights)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{d}: bad {WEIGHTS}: {str(e)[:300]}") from e
    return model.eval(), meta
