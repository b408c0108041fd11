"""Model and training hyper-parameters: dataclasses with commented defaults, loaded from YAML.

A YAML config has two sections, ``model:`` and ``train:``; every key must be a field of
:class:`ModelConfig` / :class:`TrainConfig` and have its type. Presets ship in
``vbgm_core/configs/`` (``debug``, ``default``, ``paper``).
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..music.instruments import GROUPS
from ..music.tokenizer import (
    ATTRIBUTES,
    BAR,
    BEAT_T,
    EOS,
    NOTE,
    TIMING_BINS,
    VOCAB_SIZES,
)

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
N_INSTRUMENTS = len(GROUPS)  # bits of the instrument mask: bit i = group i + 1 present
PRECISIONS = ("auto", "bf16", "fp32")   # TrainConfig.precision

# Attributes that carry a value for each token type; the loss counts an attribute only where
# the *target* token's type uses it.
TYPE_ATTRIBUTES = {
    BAR: ("type", "density"),
    BEAT_T: ("type", "beat", "density", "strength"),
    NOTE: ("type", "instrument", "pitch", "duration"),
    EOS: ("type",),
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the Controllable Music Transformer."""

    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 256
    d_ff: int = 1024
    dropout: float = 0.1
    # Embedding width of each token attribute (concatenated, then projected to d_model).
    emb_sizes: dict = field(default_factory=lambda: {
        "type": 16, "beat": 32, "density": 32, "strength": 32,
        "instrument": 16, "pitch": 128, "duration": 64})
    vocab_sizes: tuple = VOCAB_SIZES
    n_genres: int = 6              # set from the dataset's genre list when training
    n_timing_bins: int = TIMING_BINS + 1  # beat-timing bins round(100 * beat / n_beats): 0..100
    attention: str = "torch"       # "torch" (plain PyTorch) or "fast" (pytorch-fast-transformers)
    chunk_size: int = 64           # chunk length of the chunked causal linear attention
    eps: float = 1e-6              # added to the linear-attention normaliser
    # Also add the genre and instrument-set embeddings to every token's input: a start token's
    # share of a linear-attention average shrinks as the context grows, and a model conditioned
    # only through start tokens learned to ignore the genre (METHOD.md's known defect).
    condition_every_token: bool = False

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise InputError(f"model config: d_model {self.d_model} is not a multiple of "
                             f"n_heads {self.n_heads}")
        if set(self.emb_sizes) != set(ATTRIBUTES):
            raise InputError(f"model config: emb_sizes needs exactly the keys {list(ATTRIBUTES)},"
                             f" got {sorted(self.emb_sizes)}")
        if self.attention not in ("torch", "fast"):
            raise InputError(f"model config: attention must be 'torch' or 'fast', "
                             f"not {self.attention!r}")
        # YAML/JSON give lists; keep a hashable, comparable tuple.
        object.__setattr__(self, "vocab_sizes", tuple(self.vocab_sizes))
        if len(self.vocab_sizes) != len(ATTRIBUTES):
            raise InputError(f"model config: vocab_sizes needs {len(ATTRIBUTES)} entries")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and data sampling for ``vbgm train``."""

    crop_len: int = 512            # tokens per training example (random crop of one song)
    start_crop_prob: float = 0.25  # share of crops that start at the song's start, as generation
    batch_size: int = 8            # per process
    lr: float = 5e-4               # peak learning rate
    min_lr_ratio: float = 0.1      # cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 200
    max_steps: int = 20000         # length of the cosine schedule
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.98)
    grad_clip: float = 1.0
    valid_fraction: float = 0.05   # songs held out when the dataset has no 'valid' split
    eval_every: int = 250          # steps between validation passes
    eval_batches: int = 8
    checkpoint_every: int = 250    # steps between checkpoints (also at the end and on --max-minutes)
    log_every: int = 10            # steps between metric rows
    seed: int = 0
    # Augmentation and robustness (vbgm_core/training/augment.py; validation is never augmented).
    transpose: tuple = (0, 0)      # pitched tracks of a crop move by a shift drawn from [lo, hi]
    timing_dropout: float = 0.0    # share of crops trained without the beat-timing input
    control_dropout: float = 0.0   # share of density/strength inputs hidden (targets kept)
    # 0: crops drawn by song length; 1: every genre equally often (rock is 44% of midi_genre).
    genre_balance: float = 0.0
    # Arithmetic of the forward/backward pass: "auto" = bf16 autocast on a GPU that supports it,
    # float32 on a CPU; "bf16" = bf16 autocast on any device (1.5x faster, as accurate, on this
    # project's Xeon with AMX-BF16: docs/TRAINING.md); "fp32" = never. Weights, AdamW state, the
    # losses and the linear-attention feature map and sums stay float32 in every case.
    precision: str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise InputError(f"train config: precision must be one of {', '.join(PRECISIONS)}, "
                             f"not {self.precision!r}")
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "transpose", tuple(self.transpose))
        if len(self.transpose) != 2 or self.transpose[0] > self.transpose[1]:
            raise InputError(f"train config: transpose must be [low, high], not {self.transpose}")
        for name in ("timing_dropout", "control_dropout", "genre_balance"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"train config: {name} must be in [0, 1]")


def _check_types(cls, values, source):
    """Build ``cls(**values)``; unknown keys and wrong value types are errors naming ``source``."""
    if not isinstance(values, dict):
        raise InputError(f"{source}: section {cls.__name__} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    for key, value in values.items():
        if key not in fields:
            raise InputError(f"{source}: unknown key {key!r} for {cls.__name__} "
                             f"(known: {', '.join(fields)})")
        expected = type(getattr(defaults, key))
        ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
        if expected in (tuple, list):
            ok = isinstance(value, (list, tuple))
        if isinstance(value, bool) and expected is not bool:
            ok = False
        if not ok:
            raise InputError(f"{source}: {cls.__name__}.{key} must be {expected.__name__}, "
                             f"got {value!r}")
        if key == "emb_sizes" and not all(isinstance(v, int) and not isinstance(v, bool)
                                          for v in value.values()):
            raise InputError(f"{source}: emb_sizes values must be integers")
    values = {k: (float(v) if type(getattr(defaults, k)) is float else v) for k, v in values.items()}
    return cls(**values)


def resolve_config_path(name_or_path):
    """A preset name (``debug``, ``default``, ``paper``) or a YAML path → the file's path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise InputError(f"{path}: config file not found")
        return path
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise InputError(f"{name_or_path}: no such config preset (presets: {', '.join(names)};"
                         " or give a .yaml path)")
    return preset


def load_config(name_or_path):
    """Load a preset or YAML file.

    Args:
        name_or_path: preset name or path to a YAML file with ``model:`` / ``train:`` sections.

    Returns:
        (ModelConfig, TrainConfig)

    Raises:
        InputError: missing file, bad YAML, unknown section or key, wrong value type.
    """
    import yaml

    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a config must be a mapping with 'model' and 'train' sections")
    unknown = set(data) - {"model", "train"}
    if unknown:
        raise InputError(f"{path}: unknown section(s) {sorted(unknown)} (expected model, train)")
    return (_check_types(ModelConfig, data.get("model") or {}, path),
            _check_types(TrainConfig, data.get("train") or {}, path))


def config_to_dict(cfg):
    """A config dataclass → plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def model_config_from_dict(values, source):
    """Rebuild a ModelConfig stored in a checkpoint; mismatching fields are load errors."""
    return _check_types(ModelConfig, values, source)
