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

from ..errors import InputError, ModelLoadError
from ..files import atomic_path
from .cmt import CMT
from .config import ATTRIBUTES, config_to_dict, model_config_from_dict

MODEL_FORMAT = "vbgm-cmt"
CHECKPOINT_FORMAT = "vbgm-train-checkpoint"
FORMAT_VERSION = 1


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
        ModelLoadError: missing file, not a vbgm model, another format version, metadata that
            does not parse, weights that do not match their config or are not finite (NaN,
            infinities), a genre list that is not the model's; one line naming the file.
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
    if metadata.get("format") != MODEL_FORMAT:
        raise ModelLoadError(f"{path}: not a vbgm model (no '{MODEL_FORMAT}' metadata)")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ModelLoadError(f"{path}: model format version {metadata.get('format_version')}, "
                             f"this vbgm reads {FORMAT_VERSION}")
    if _metadata_json(metadata, "attributes", path, "[]") != list(ATTRIBUTES):
        raise ModelLoadError(f"{path}: model uses other token attributes")
    cfg = _model_config(_metadata_json(metadata, "config", path), path)
    extra = _metadata_json(metadata, "extra", path, "{}")
    if not isinstance(extra, dict):
        raise ModelLoadError(f"{path}: damaged model metadata ('extra' is not a JSON object)")
    check_genres(extra, path, cfg.n_genres)
    model = CMT(cfg)
    _load_state(model, tensors, path)
    _check_finite(tensors, path)
    return model.to(device).eval(), extra


def _metadata_json(metadata, key, path, default=None):
    """One JSON field of a model file's metadata; ModelLoadError when missing or cut off."""
    text = metadata.get(key, default)
    if text is None:
        raise ModelLoadError(f"{path}: damaged model metadata (no '{key}')")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ModelLoadError(f"{path}: damaged model metadata ('{key}' is not valid JSON: "
                             f"{e})") from None


def check_genres(extra, path, n_genres=None):
    """The genre list of a model's ``extra`` metadata, where it has one: distinct names, no
    more than the genres the model has (``n_genres``, its config's). ModelLoadError
    otherwise."""
    if "genres" not in extra:
        return
    genres = extra["genres"]
    if not isinstance(genres, list) or not genres or not all(
            isinstance(g, str) and g.strip() for g in genres) or len(set(genres)) < len(genres):
        raise ModelLoadError(f"{path}: damaged model metadata (the genres must be a list of "
                             f"distinct names, not {json.dumps(genres)[:80]})")
    if n_genres is not None and len(genres) > n_genres:
        raise ModelLoadError(f"{path}: the model lists {len(genres)} genres but has only "
                             f"{n_genres}")


def _check_finite(tensors, path):
    """Every weight a finite number: NaN or an infinity (a diverged run, a damaged copy) would
    only show up later, deep inside sampling."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelLoadError(f"{path}: damaged weights: {name} holds {bad} NaN or "
                                 "infinite value(s)")


def _model_config(values, path):
    if not isinstance(values, dict):
        raise ModelLoadError(f"{path}: damaged model metadata ('config' is not a JSON object)")
    try:
        return model_config_from_dict(values, path)
    except InputError as e:
        raise ModelLoadError(str(e)) from None


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
    model = CMT(_model_config(payload["model_config"], path))
    _load_state(model, payload["model"], path)
    return model
