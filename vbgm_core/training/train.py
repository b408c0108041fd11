"""`vbgm train`: one resumable training loop for the CMT.

Examples are random crops of single songs (``crop_len`` tokens) that keep every token's true
beat index and beat-timing bin, computed on the whole song. The data and dropout randomness of
step ``s`` are seeded from (seed, s, rank), so a checkpoint that stores the step, model,
optimizer and scheduler resumes the exact loss curve, on any number of processes.

``init_from`` starts a new run (fresh optimizer and schedule) from another run's weights: how a
finished run is trained further (its cosine schedule has ended, so resuming it would not learn).

Multi-GPU / multi-node: run under ``torchrun`` (PyTorch DDP); rank 0 writes all files.

Run directory:
    checkpoint.pt      latest training checkpoint (atomic; --resume continues from it)
    model.safetensors  the weights with their config, for use (written at every checkpoint)
    metrics.jsonl      one JSON row per log / validation step
    loss.png           loss curves
    config.yaml        the configs the run uses
"""

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ModelLoadError
from ..figures import save_figure
from ..files import atomic_path
from ..model.checkpoint import (
    load_checkpoint,
    load_model,
    model_from_checkpoint,
    save_checkpoint,
    save_model,
)
from ..model.cmt import CMT, masked_losses
from ..model.config import (
    ATTRIBUTES,
    N_INSTRUMENTS,
    ModelConfig,
    TrainConfig,
    config_to_dict,
    load_config,
)
from ..music.sampler import PITCH_RANGE
from ..music.tokenizer import token_positions
from .augment import drop_controls, transpose
from .data import TokenDataset

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINT_KEYS = {"step", "model", "optimizer", "scheduler", "model_config", "train_config",
                   "genres"}


def instrument_bits(mask):
    """Instrument mask int → list of N_INSTRUMENTS 0/1 (bit i = group i + 1 present)."""
    return [(int(mask) >> i) & 1 for i in range(N_INSTRUMENTS)]


class CropSampler:
    """Random crops of the songs in ``rows`` of a dataset, as padded batches.

    Args:
        dataset: a :class:`vbgm_core.training.data.TokenDataset`.
        rows: song row numbers to draw from.
        crop_len: tokens per example; shorter songs are padded with zeros.
        start_crop_prob: probability that a crop starts at the song's first token.
        transpose: (low, high) semitones a crop's pitched notes move by; (0, 0) = never.
        genre_balance: 0 draws songs by length; 1 gives every genre the same share of crops.
    """

    def __init__(self, dataset, rows, crop_len, start_crop_prob, transpose=(0, 0),
                 genre_balance=0.0):
        self.dataset = dataset
        self.rows = list(rows)
        self.crop_len = crop_len
        self.start_crop_prob = start_crop_prob
        self.transpose = tuple(transpose)
        lengths = torch.tensor([dataset.index[r]["length"] for r in self.rows], dtype=torch.float)
        genres = torch.tensor([dataset.index[r]["genre_id"] for r in self.rows])
        share = torch.zeros(int(genres.max()) + 1).index_add_(0, genres, lengths)
        lengths = lengths / share[genres] ** genre_balance
        self.weights = lengths / lengths.sum()   # balance 0: every token about equally likely
        self._positions = {}

    def _song(self, row):
        if row not in self._positions:
            tokens = self.dataset.song(row)
            beat, timing = token_positions(tokens)
            self._positions[row] = (tokens.astype(np.int64), beat, timing)
        return self._positions[row]

    def batch(self, batch_size, generator):
        """Draw a batch.

        Returns:
            dict with tokens ``[B, L, 7]``, beat_index ``[B, L]``, timing ``[B, L]``,
            genre ``[B]``, instruments ``[B, 5]`` (CPU tensors).
        """
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator)
        L = self.crop_len
        out = {"tokens": torch.zeros(batch_size, L, len(ATTRIBUTES), dtype=torch.long),
               "beat_index": torch.zeros(batch_size, L, dtype=torch.long),
               "timing": torch.zeros(batch_size, L, dtype=torch.long),
               "genre": torch.zeros(batch_size, dtype=torch.long),
               "instruments": torch.zeros(batch_size, N_INSTRUMENTS, dtype=torch.long)}
        for b, pick in enumerate(picks.tolist()):
            row = self.rows[pick]
            tokens, beat, timing = self._song(row)
            start = 0
            if len(tokens) > L and torch.rand(1, generator=generator).item() >= self.start_crop_prob:
                start = int(torch.randint(0, len(tokens) - L + 1, (1,), generator=generator))
            n = min(L, len(tokens) - start)
            crop = tokens[start:start + n]
            if self.transpose != (0, 0):
                shift = int(torch.randint(self.transpose[0], self.transpose[1] + 1, (1,),
                                          generator=generator))
                crop, _ = transpose(crop, shift, PITCH_RANGE)
            out["tokens"][b, :n] = torch.from_numpy(crop)
            out["beat_index"][b, :n] = torch.from_numpy(beat[start:start + n])
            out["timing"][b, :n] = torch.from_numpy(timing[start:start + n])
            info = self.dataset.index[row]
            out["genre"][b] = info["genre_id"]
            out["instruments"][b] = torch.tensor(instrument_bits(info["instruments"]))
        return out


def split_rows(dataset, valid_fraction):
    """(train rows, valid rows), split by song: the dataset's own split, or, when it has no
    validation songs, every n-th training song held out (at least one when there are two;
    none when ``valid_fraction`` is 0)."""
    train = dataset.split_ids("train")
    valid = dataset.split_ids("valid")
    if not train:
        raise InputError(f"{dataset.path}: no training songs in the dataset")
    if not valid and len(train) >= 2 and valid_fraction > 0:
        n_valid = max(1, round(valid_fraction * len(train)))
        valid = train[::max(1, len(train) // n_valid)][:n_valid]
        train = [r for r in train if r not in valid]
    return train, valid


def lr_factor(step, cfg):
    """Learning-rate multiplier: linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model, cfg):
    """AdamW; matrices (linear and embedding weights) decay, biases and norms do not."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": other, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=cfg.betas)


def _step_seed(seed, step, rank, stream):
    """Independent seed per (run seed, step, process, stream): data = 0, dropout = 1."""
    return ((seed * 1_000_003 + step) * 1_009 + rank) * 4 + stream


def bf16_autocast(device, precision):
    """Whether the forward/backward pass runs under bf16 autocast (``TrainConfig.precision``):
    "auto" on a GPU that supports bf16 only, "bf16" everywhere, "fp32" never."""
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("precision bf16: this GPU does not support bfloat16 (use auto or fp32)")
    return precision == "bf16"


def _to(batch, device):
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@dataclass
class TrainResult:
    """What a `vbgm train` run did."""

    run_dir: Path
    step: int
    max_steps: int
    stopped_early: bool          # stopped by --max-minutes / --max-steps before the schedule's end
    train_loss: float | None
    valid_loss: float | None
    tokens_per_s: float | None

    def describe(self):
        state = "stopped (resume with --resume)" if self.stopped_early else "finished"
        parts = [f"{state} at step {self.step}/{self.max_steps}"]
        if self.train_loss is not None:
            parts.append(f"train loss {self.train_loss:.3f}")
        if self.valid_loss is not None:
            parts.append(f"valid loss {self.valid_loss:.3f}")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:,.0f} tokens/s")
        return f"{self.run_dir}: " + ", ".join(parts)


class _Distributed:
    """torchrun's environment → DDP process group (or a single process)."""

    def __init__(self, device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device available")
        if device == "cuda":
            device = f"cuda:{local}"
            torch.cuda.set_device(device)
        self.device = torch.device(device)
        if self.world > 1:
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self):
        return self.rank == 0

    def any(self, flag):
        """True on every process when ``flag`` is true on any (e.g. the time limit)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(t)
        return bool(t.item())

    def close(self):
        if self.world > 1:
            torch.distributed.destroy_process_group()


def _check_resume(payload, model_cfg, train_cfg, genres, path, config_given):
    """Refuse a checkpoint from another config or another genre list."""
    if payload.get("genres") != list(genres):
        raise ModelLoadError(f"{path}: checkpoint was trained on genres {payload.get('genres')}, "
                             f"the dataset has {list(genres)}")
    if not config_given:
        return
    for name, cfg, stored in (("model", model_cfg, payload.get("model_config")),
                              ("train", train_cfg, payload.get("train_config"))):
        now = config_to_dict(cfg)
        # A field added since the checkpoint was written (e.g. precision) counts at its default;
        # precision changes the arithmetic, not the state, so a resumed run may switch it.
        stored = {**config_to_dict(type(cfg)()), **(stored or {})}
        diff = sorted(k for k in now if stored.get(k) != now[k] and k != "precision")
        if diff:
            raise ModelLoadError(f"{path}: checkpoint is from another config ({name} differs in "
                                 f"{', '.join(diff)}); resume without --config or use its config")


def loss_sums(model, batches, device, autocast=contextlib.nullcontext):
    """Per attribute, the summed cross entropy (``masked_losses``) over ``batches`` (dicts as
    ``CropSampler.batch`` makes them) and the count of positions it is summed over; eval mode,
    no gradients (the model's mode is restored). ``mean_losses`` turns them into the loss."""
    sums = {a: 0.0 for a in ATTRIBUTES}
    counts = {a: 0 for a in ATTRIBUTES}
    training = model.training
    model.eval()
    with torch.no_grad():
        for batch in batches:
            batch = _to(batch, device)
            with autocast():
                losses, n = masked_losses(model(**batch), batch["tokens"])
            for a in ATTRIBUTES:
                sums[a] += losses[a].item() * n[a].item()
                counts[a] += n[a].item()
    model.train(training)
    return sums, counts


def mean_losses(sums, counts):
    """The validation loss of ``loss_sums``: each attribute's mean over its positions, and
    their sum ("loss")."""
    per = {a: sums[a] / max(counts[a], 1) for a in ATTRIBUTES}
    return {"loss": sum(per.values()), **per}


def _evaluate(model, sampler, cfg, device, autocast):
    """Mean per-attribute validation loss over a fixed set of crops."""
    generator = torch.Generator().manual_seed(0)   # the same crops in every run: comparable losses
    batches = (sampler.batch(cfg.batch_size, generator) for _ in range(cfg.eval_batches))
    return mean_losses(*loss_sums(model, batches, device, autocast))


validation_loss = _evaluate   # public name (scripts/compare_models.py)


def _append_metrics(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_metrics(path, step):
    """On resume, drop rows logged after the checkpoint (those steps run again)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(r + "\n" for r in rows))


def plot_losses(metrics_path, out_png):
    """Train and validation loss against step, from metrics.jsonl."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    fig, ax = plt.subplots(figsize=(7, 4))
    for split, style in (("train", "-"), ("valid", "o-")):
        pts = [(r["step"], r["loss"]) for r in rows if r["split"] == split]
        if pts:
            ax.plot(*zip(*pts), style, label=split, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (sum of the 7 attributes)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out_png, bbox_inches="tight")


def train(config, data, output, *, resume=False, init_from=None, max_minutes=None, max_steps=None,
          threads=None, device="auto", progress=False):
    """Train (or resume training) a CMT.

    Args:
        config: preset name or YAML path; on resume None means "the checkpoint's config".
        data: dataset directory from `vbgm prepare`.
        output: run directory (created; must not hold a run unless ``resume``).
        resume: continue from ``output/checkpoint.pt``.
        init_from: start a new run from these weights (a ``model.safetensors`` of the same
            model config and genres) instead of random ones.
        max_minutes: checkpoint and stop cleanly after this much wall time.
        max_steps: stop at this step (the learning-rate schedule still follows the config).
        threads: CPU threads for torch (default: torch's choice).
        device: "auto", "cpu" or "cuda".
        progress: show a progress bar on stderr (rank 0).

    Returns:
        TrainResult.

    Raises:
        InputError: bad dataset, config or output directory.
        ModelLoadError: a checkpoint that is damaged or does not fit.
    """
    t0 = time.monotonic()
    dataset = TokenDataset(data)   # raises InputError for a missing/empty/incompatible dataset
    out = Path(output)
    ckpt_path = out / CHECKPOINT
    payload = None
    if resume and init_from:
        raise InputError("--init-from starts a new run; a resumed run already has its weights")
    if resume:
        payload = load_checkpoint(ckpt_path)
        missing = CHECKPOINT_KEYS - set(payload)
        if missing:
            raise ModelLoadError(
                f"{ckpt_path}: incomplete checkpoint (no {', '.join(sorted(missing))})")
    elif ckpt_path.exists():
        raise InputError(f"{out}: already holds a training run (use --resume to continue it)")
    if config is None:
        if payload is None:
            raise InputError("--config is needed to start a run")
        try:
            model_cfg = ModelConfig(**payload["model_config"])
            train_cfg = TrainConfig(**payload["train_config"])
        except (TypeError, InputError) as e:
            raise ModelLoadError(
                f"{ckpt_path}: checkpoint config does not fit this vbgm ({e})") from None
    else:
        model_cfg, train_cfg = load_config(config)
        model_cfg = dataclasses.replace(model_cfg, n_genres=len(dataset.genres))
    if payload is not None:
        _check_resume(payload, model_cfg, train_cfg, dataset.genres, ckpt_path, config is not None)
    init = payload.get("init") if payload else None
    init_model = None
    if init_from:
        init_model, init = _initial_weights(init_from, model_cfg, dataset.genres)
    stop_step = min(max_steps or train_cfg.max_steps, train_cfg.max_steps)
    if threads:
        torch.set_num_threads(threads)

    dist = _Distributed(device)
    try:
        return _loop(dataset, out, model_cfg, train_cfg, payload, init_model, init, dist,
                     stop_step, max_minutes, progress, t0)
    finally:
        dist.close()


def _initial_weights(path, model_cfg, genres):
    """A model of ``model_cfg`` holding the weights at ``path``, and their provenance.

    The configs must be equal, except that the new run may switch ``condition_every_token`` on
    (its new embeddings start at zero, so the model starts out unchanged).
    """
    source, extra = load_model(path)
    old, new = config_to_dict(source.cfg), config_to_dict(model_cfg)
    diff = sorted(k for k in new if old.get(k) != new[k]
                  and not (k == "condition_every_token" and new[k]))
    if diff:
        raise ModelLoadError(f"{path}: --init-from model has another model config "
                             f"({', '.join(diff)} differ)")
    if extra.get("genres") != list(genres):
        raise ModelLoadError(f"{path}: --init-from model was trained on genres "
                             f"{extra.get('genres')}, the dataset has {list(genres)}")
    model = CMT(model_cfg)
    missing, _ = model.load_state_dict(source.float().state_dict(), strict=False)
    assert all(k.startswith("token_") for k in missing), missing   # only the new embeddings
    return model.train(), {"path": str(path), "step": extra.get("step"), "init": extra.get("init")}


class _Run:
    """A training run's moving parts: the model (and its DDP wrapper), the optimizer and its
    schedule, the step, the arithmetic; one step of training; what a checkpoint holds."""

    def __init__(self, model, cfg, dist, payload, path):
        self.model, self.cfg, self.dist = model.to(dist.device).train(), cfg, dist
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lambda s: lr_factor(s, cfg))
        self.step = 0
        if payload:
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
                self.scheduler.load_state_dict(payload["scheduler"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise ModelLoadError(f"{path}: optimizer state does not fit ({e})") from None
            self.step = int(payload["step"])
        self.net = model
        if dist.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
        self.bf16 = bf16_autocast(dist.device, cfg.precision)

    def autocast(self):
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self, sampler):
        """One optimizer step on a batch that depends only on (seed, step, rank), so a resumed
        run repeats the loss curve. Returns (per-attribute losses, tokens seen by all ranks)."""
        cfg, dist = self.cfg, self.dist
        data_stream = torch.Generator().manual_seed(_step_seed(cfg.seed, self.step, dist.rank, 0))
        batch = sampler.batch(cfg.batch_size, data_stream)
        inputs = dict(batch)
        inputs["tokens"], inputs["timing"] = drop_controls(batch, cfg.timing_dropout,
                                                           cfg.control_dropout, data_stream)
        batch, inputs = _to(batch, dist.device), _to(inputs, dist.device)
        torch.manual_seed(_step_seed(cfg.seed, self.step, dist.rank, 1))      # dropout
        with self.autocast():
            losses, _ = masked_losses(self.net(**inputs), batch["tokens"])
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return ({a: v.item() for a, v in losses.items()},
                int((batch["tokens"][..., 0] > 0).sum()) * dist.world)

    def state(self):
        """The training state a checkpoint stores (the configs and provenance added)."""
        return {"step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}


class _LossWindow:
    """Training losses and tokens since the last logged step."""

    def __init__(self):
        self.tokens, self.n, self.started = 0, 0, time.monotonic()
        self.losses = {a: 0.0 for a in ATTRIBUTES}

    def add(self, losses, tokens):
        self.tokens += tokens
        self.n += 1
        for a in ATTRIBUTES:
            self.losses[a] += losses[a]

    def row(self):
        """Mean losses, their sum ("loss") and tokens per second over the window."""
        per = {a: v / self.n for a, v in self.losses.items()}
        tps = self.tokens / max(time.monotonic() - self.started, 1e-9)
        return {"loss": sum(per.values()), **per, "tokens_per_s": tps}


def _write_config(out, model_cfg, cfg):
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump({"model": config_to_dict(model_cfg),
                                       "train": config_to_dict(cfg)}, sort_keys=False))


def _save(out, run, model_cfg, cfg, genres, music_stats, init):
    """Checkpoint, weights for use and the loss plot (rank 0's files), at the run's step."""
    provenance = {"init": init} if init else {}
    save_checkpoint(out / CHECKPOINT, {
        **run.state(), "model_config": config_to_dict(model_cfg),
        "train_config": config_to_dict(cfg), "genres": list(genres), **provenance})
    save_model(out / WEIGHTS, run.model, {"genres": list(genres), "step": run.step,
                                          "music_stats": music_stats, **provenance})
    metrics = out / METRICS
    if metrics.exists() and metrics.stat().st_size:
        plot_losses(metrics, out / "loss.png")


def _loop(dataset, out, model_cfg, cfg, payload, init_model, init, dist, stop_step, max_minutes,
          progress, t0):
    from tqdm import tqdm

    if dist.main:
        _write_config(out, model_cfg, cfg)
    train_rows, valid_rows = split_rows(dataset, cfg.valid_fraction)
    sampler = CropSampler(dataset, train_rows, cfg.crop_len, cfg.start_crop_prob,
                          cfg.transpose, cfg.genre_balance)
    valid = CropSampler(dataset, valid_rows, cfg.crop_len, 0.0) if valid_rows else None

    torch.manual_seed(cfg.seed)
    if payload:
        model = model_from_checkpoint(payload, out / CHECKPOINT)
    else:
        model = init_model if init_model is not None else CMT(model_cfg)
    run = _Run(model, cfg, dist, payload, out / CHECKPOINT)
    metrics = out / METRICS
    if dist.main:
        _truncate_metrics(metrics, run.step)
    music_stats = dataset.music_stats()   # travels with the weights (the Scorer reads it)

    def checkpoint():
        if dist.main:
            _save(out, run, model_cfg, cfg, dataset.genres, music_stats, init)

    bar = tqdm(total=stop_step, initial=run.step, disable=not (progress and dist.main),
               file=sys.stderr, unit="step", dynamic_ncols=True)
    window = _LossWindow()
    last = {"loss": None, "valid": None, "tokens_per_s": None}
    stopped_early = False
    while run.step < stop_step:
        window.add(*run.train_step(sampler))
        step = run.step
        if step % cfg.log_every == 0 or step == stop_step:
            row = window.row()
            last.update(loss=row["loss"], tokens_per_s=row["tokens_per_s"])
            if dist.main:
                _append_metrics(metrics, {"step": step, "split": "train", **row,
                                          "lr": run.scheduler.get_last_lr()[0],
                                          "elapsed_s": time.monotonic() - t0})
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
            window = _LossWindow()
        if valid is not None and (step % cfg.eval_every == 0 or step == stop_step):
            row = _evaluate(run.model, valid, cfg, dist.device, run.autocast)
            last["valid"] = row["loss"]
            if dist.main:
                _append_metrics(metrics, {"step": step, "split": "valid", **row})
        bar.update(1)
        out_of_time = max_minutes is not None and time.monotonic() - t0 > 60 * max_minutes
        if dist.any(out_of_time):
            stopped_early = True
            break
        if step % cfg.checkpoint_every == 0 and step < stop_step:
            checkpoint()
    checkpoint()
    bar.close()
    return TrainResult(out, run.step, cfg.max_steps, stopped_early or run.step < cfg.max_steps,
                       last["loss"], last["valid"], last["tokens_per_s"])
