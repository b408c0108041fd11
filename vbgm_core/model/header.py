"""A model file's header: what a ``model.safetensors`` says about itself, read and checked
without torch (`vbgm genres`, the CLI's input checks and the scorer's early answers need no
weights). ``checkpoint.load_model`` runs the same checks, then adds the weights'.
"""

import json

from ..errors import InputError, ModelLoadError
from .config import ATTRIBUTES, model_config_from_dict

MODEL_FORMAT = "vbgm-cmt"
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 2**20   # safetensors' own limit on the JSON header


def read_header(path):
    """The ``__metadata__`` of a safetensors file, from its first bytes alone."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size < _MAX_HEADER:
                raise ValueError("no safetensors header")
            metadata = json.loads(f.read(size)).get("__metadata__")
    except (OSError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"{path}: not a vbgm model file ({e})") from None
    return metadata if isinstance(metadata, dict) else {}


def check_header(metadata, path):
    """``(ModelConfig, extra)`` of a model file's metadata: the format and its version, the
    token attributes, a config that is a valid ModelConfig, an ``extra`` object whose genre
    list fits the model. ModelLoadError, naming the file, otherwise."""
    if metadata.get("format") != MODEL_FORMAT:
        raise ModelLoadError(f"{path}: not a vbgm model (no '{MODEL_FORMAT}' metadata)")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ModelLoadError(f"{path}: model format version {metadata.get('format_version')}, "
                             f"this vbgm reads {FORMAT_VERSION}")
    if _json(metadata, "attributes", path, "[]") != list(ATTRIBUTES):
        raise ModelLoadError(f"{path}: model uses other token attributes")
    cfg = model_config(_json(metadata, "config", path), path)
    extra = _json(metadata, "extra", path, "{}")
    if not isinstance(extra, dict):
        raise ModelLoadError(f"{path}: damaged model metadata ('extra' is not a JSON object)")
    _check_genres(extra, path, cfg.n_genres)
    return cfg, extra


def model_config(values, path):
    """A ModelConfig from a model file's (or a checkpoint's) config dict; ModelLoadError if
    it is not one."""
    if not isinstance(values, dict):
        raise ModelLoadError(f"{path}: damaged model metadata ('config' is not a JSON object)")
    try:
        return model_config_from_dict(values, path)
    except InputError as e:
        raise ModelLoadError(str(e)) from None


def _json(metadata, key, path, default=None):
    """One JSON field of the metadata; ModelLoadError when missing or cut off."""
    text = metadata.get(key, default)
    if text is None:
        raise ModelLoadError(f"{path}: damaged model metadata (no '{key}')")
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{path}: damaged model metadata ('{key}' is not valid JSON: "
                             f"{e})") from None


def _check_genres(extra, path, n_genres):
    """The genre list, where there is one: distinct names, no more than the model's genres."""
    if "genres" not in extra:
        return
    genres = extra["genres"]
    if not isinstance(genres, list) or not genres or not all(
            isinstance(g, str) and g.strip() for g in genres) or len(set(genres)) < len(genres):
        raise ModelLoadError(f"{path}: damaged model metadata (the genres must be a list of "
                             f"distinct names, not {json.dumps(genres)[:80]})")
    if len(genres) > n_genres:
        raise ModelLoadError(f"{path}: the model lists {len(genres)} genres but has only "
                             f"{n_genres}")
