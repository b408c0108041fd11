"""Files a model lives in.

- Weights for use (``model.safetensors``): safetensors tensors; the file's metadata holds the
  ModelConfig, the token attributes and vocabulary, and ``extra`` (e.g. the genre list). Loading
  needs nothing from training.
- Training checkpoints (``checkpoint.pt``): model, optimizer, scheduler, step and configs, saved
  with ``torch.save`` and loaded with ``weights_only=True`` (no pickled code runs).

Both are written atomically (temp file + rename), so an interrupted write never leaves a
half-written file under the real name; loading checks everything and never loads partially.
"""

import json
from pathlib import Path

import torch

from ..errors import ModelLoadError
from ..files import atomic_path
from .cmt import CMT
from .config import ATTRIBUTES, config_to_dict
from .header import FORMAT_VERSION, MODEL_FORMAT, check_header, model_config

CHECKPOINT_FORMAT = "vbgm-train-checkpoint"


def save_model(path, model, extra=None):
    """Write ``model``'s weights and config to a safetensors file.

    Args:
        path: destination (``.safetensors``); replaced atomically.
        model: a :class:`CMT` (unwrapped, not DDP).
        extra: JSON-able dict stored beside the config (e.g. ``{"genres": [...]}``).
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": MODEL_FORMAT, "format_version": str(FORMAT_VERSION),
                "config": json.dumps(config_to_dict(model.cfg)),
                "attributes": json.dumps(list(ATTRIBUTES)),
                "vocab_sizes": json.dumps(list(model.cfg.vocab_sizes)),
                "extra": json.dumps(extra or {})}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_model(path, device="cpu"):
    """Load a model written by :func:`save_model`.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the weights.

    Returns:
        (CMT in eval mode, extra dict).

    Raises:
        ModelLoadError: missing file, a header that ``header.check_header`` refuses, weights
            that do not match their config or are not finite (NaN, infinities); one line
            naming the file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: not a readable safetensors model ({e})") from None
    cfg, extra = check_header(metadata, path)
    model = CMT(cfg)
    _load_state(model, tensors, path)
    _check_finite(tensors, path)
    return model.to(device).eval(), extra


def _check_finite(tensors, path):
    """Every weight a finite number: NaN or an infinity (a diverged run, a damaged copy) would
    only show up later, deep inside sampling."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelLoadError(f"{path}: damaged weights: {name} holds {bad} NaN or "
                                 "infinite value(s)")


def _load_state(model, state, path):
    """Strict load: every tensor present, none extra, every shape equal."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise ModelLoadError(
            f"{path}: weights do not match the model config ({detail[:300]})") from None


def save_checkpoint(path, payload):
    """Atomically write a training checkpoint (a dict of tensors and plain values)."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path):
    """Read a training checkpoint written by :func:`save_checkpoint`.

    Raises:
        ModelLoadError: missing, truncated or foreign file, or another format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError... when damaged
        raise ModelLoadError(f"{path}: not a readable checkpoint, truncated or damaged "
                             f"({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path}: not a vbgm training checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{path}: checkpoint format version {payload.get('format_version')}, "
                             f"this vbgm reads {FORMAT_VERSION}")
    return payload


def model_from_checkpoint(payload, path):
    """A CMT with the weights of a loaded training checkpoint (strictly checked)."""
    model = CMT(model_config(payload["model_config"], path))
    _load_state(model, payload["model"], path)
    return model
