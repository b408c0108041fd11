"""Train the CMT on one CUDA GPU inside a time limit (issue 24); run by scripts/train_gpu.sh.

On the CPU machine, where the dataset was prepared (`vbgm prepare`):
    scripts/train_gpu.sh pack data/midi_genre data/gpu_pack
writes data/gpu_pack/ (meta.json, index.csv, stats.json, tokens.xz: the token array column by
column, xz-compressed, with its sha256): midi_genre's 140 MB tokens.npy in 12.7 MiB, small
enough to travel with a copy of the repository (data/ is git-ignored: the device tool's
``carry``). On the GPU machine (python3 with CUDA torch, numpy, pyyaml, safetensors, tqdm,
matplotlib; no miditoolkit, no network needed):
    scripts/train_gpu.sh train --data data/gpu_pack -o /tmp/gpu_run --max-minutes 9 --export OUT
unpacks the data once (to a temporary folder, checked against the sha256), times a few training
steps on the device, sets the run's max_steps so that the cosine schedule ends inside the time
limit, and trains (`vbgm_core.training.train.train`, bf16 autocast on the GPU). ``--export DIR``
also writes what is worth bringing back in files of at most ``--part-mib`` MiB: the weights in
fp16 (split into parts when larger: ``cat model_fp16.safetensors.part* > model.safetensors``),
metrics.jsonl, loss.png, config.yaml and gpu_run.json (device, speed, steps, losses).

Without a GPU (``--device auto`` finds none, or ``--device cpu``) the same run happens on the CPU:
how it is tested (tests/test_train.py, the debug config).
"""

import argparse
import hashlib
import json
import lzma
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

T0 = time.monotonic()
ROOT = Path(__file__).resolve().parents[1]
PACK = "pack.json"
SMALL_FILES = ("meta.json", "index.csv", "stats.json")


# ------------------------------------------------------------------------------- pack / unpack

def pack(data, out, max_mib=40.0, preset=6):
    """Dataset folder → compact folder (the token columns xz-compressed). Returns its MiB."""
    data, out = Path(data), Path(out)
    tokens = np.load(data / "tokens.npy", mmap_mode="r")
    if tokens.dtype != np.uint8 or tokens.ndim != 2:
        sys.exit(f"{data}/tokens.npy: expected a (T, 7) uint8 array, got {tokens.dtype} "
                 f"{tokens.shape}")
    array = np.ascontiguousarray(tokens)
    digest = hashlib.sha256(array.tobytes()).hexdigest()
    out.mkdir(parents=True, exist_ok=True)
    columns = np.ascontiguousarray(array.T)     # column by column: long runs, compresses ~10x
    t = time.monotonic()
    (out / "tokens.xz").write_bytes(lzma.compress(columns.tobytes(), preset=preset))
    for name in SMALL_FILES:
        shutil.copy(data / name, out / name)
    (out / PACK).write_text(json.dumps({"format": "vbgm-gpu-pack-1", "shape": list(array.shape),
                                        "dtype": "uint8", "layout": "columns",
                                        "sha256": digest, "source": str(data)}, indent=1))
    mib = sum(f.stat().st_size for f in out.iterdir()) / 2 ** 20
    print(f"packed {data} ({array.nbytes / 2 ** 20:.0f} MiB of tokens) into {out}: {mib:.1f} MiB "
          f"in {time.monotonic() - t:.0f} s")
    if mib > max_mib:
        sys.exit(f"{out}: {mib:.1f} MiB, over --max-mib {max_mib}")
    return mib


def unpack(packed, work=None):
    """Compact folder → a dataset folder (made once, reused while its sha256 matches)."""
    packed = Path(packed)
    info = json.loads((packed / PACK).read_text())
    work = Path(work) if work else Path(tempfile.gettempdir()) / f"vbgm-data-{info['sha256'][:16]}"
    done = work / ".unpacked"
    if done.is_file() and done.read_text() == info["sha256"]:
        return work
    t = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    rows, cols = info["shape"]
    columns = np.frombuffer(lzma.decompress((packed / "tokens.xz").read_bytes()), np.uint8)
    array = np.ascontiguousarray(columns.reshape(cols, rows).T)
    if hashlib.sha256(array.tobytes()).hexdigest() != info["sha256"]:
        sys.exit(f"{packed}: the unpacked tokens do not match their sha256 (damaged copy?)")
    np.save(work / "tokens.npy", array)
    for name in SMALL_FILES:
        shutil.copy(packed / name, work / name)
    done.write_text(info["sha256"])
    print(f"unpacked {packed} to {work} in {time.monotonic() - t:.1f} s", flush=True)
    return work


# ------------------------------------------------------------------------------- calibration

def time_steps(model_cfg, train_cfg, dataset, device, n_steps):
    """Seconds per training step as the training loop runs it (drawing the crops, moving
    them to the device, forward, backward, AdamW; median of ``n_steps`` after two warm-up
    steps), of one validation batch, and of writing a checkpoint."""
    import torch

    from vbgm_core.model.cmt import CMT, masked_losses
    from vbgm_core.training.train import (
        CropSampler,
        bf16_autocast,
        make_optimizer,
        split_rows,
    )

    torch.manual_seed(0)
    model = CMT(model_cfg).to(device).train()
    opt = make_optimizer(model, train_cfg)
    rows, _ = split_rows(dataset, train_cfg.valid_fraction)
    sampler = CropSampler(dataset, rows, train_cfg.crop_len, train_cfg.start_crop_prob,
                          train_cfg.transpose, train_cfg.genre_balance)
    g = torch.Generator().manual_seed(12345)
    bf16 = bf16_autocast(device, train_cfg.precision)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def batch():
        return {k: v.to(device) for k, v in sampler.batch(train_cfg.batch_size, g).items()}

    times = []
    for i in range(n_steps + 2):
        sync()
        t = time.perf_counter()
        b = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            losses, _ = masked_losses(model(**b), b["tokens"])
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        sync()
        times.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        b = batch()
        sync()
        t = time.perf_counter()
        masked_losses(model(**b), b["tokens"])
        sync()
        eval_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()},
                   Path(tmp) / "c.pt")
        save_s = time.perf_counter() - t + 0.5          # + the weights file and the loss plot
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return float(np.median(times[2:])), eval_s, save_s


def schedule(train_cfg, step_s, eval_s, save_s, budget_s, max_steps=None):
    """The train config with max_steps (and warm-up, validation, checkpoint and log intervals)
    set so that the steps, 8 validations and 8 checkpoints fit ``budget_s`` seconds."""
    import dataclasses

    steps = max(10, int((budget_s - 8 * (train_cfg.eval_batches * eval_s + save_s)) / step_s))
    if max_steps:
        steps = min(steps, max_steps)
    every = max(1, steps // 8)
    return dataclasses.replace(train_cfg, max_steps=steps,
                               warmup_steps=max(1, min(train_cfg.warmup_steps, steps // 20)),
                               eval_every=every, checkpoint_every=every,
                               log_every=max(1, min(train_cfg.log_every, steps // 50)))


# ------------------------------------------------------------------------------- export

def export(run, out, part_mib, summary):
    """The files worth bringing back, each at most ``part_mib`` MiB."""
    from vbgm_core.model.checkpoint import load_model, save_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, extra = load_model(run / "model.safetensors")
    weights = out / "model_fp16.safetensors"
    save_model(weights, model.half(), extra)
    limit = int(part_mib * 2 ** 20)
    data = weights.read_bytes()
    if len(data) > limit:
        weights.unlink()
        for i in range(0, len(data), limit):
            (out / f"model_fp16.safetensors.part{i // limit:02d}").write_bytes(data[i:i + limit])
        summary["weights"] = (f"model_fp16.safetensors.part00..{(len(data) - 1) // limit:02d}: "
                              "cat model_fp16.safetensors.part* > model.safetensors")
    else:
        summary["weights"] = "model_fp16.safetensors"
    summary["weights_sha256"] = hashlib.sha256(data).hexdigest()
    for name in ("metrics.jsonl", "loss.png", "config.yaml"):
        if (run / name).is_file():
            shutil.copy(run / name, out / name)
    (out / "gpu_run.json").write_text(json.dumps(summary, indent=1))


# ------------------------------------------------------------------------------- train

def train_main(args):
    import torch

    from vbgm_core.model.checkpoint import load_model
    from vbgm_core.model.config import config_to_dict, load_config
    from vbgm_core.training.data import TokenDataset
    from vbgm_core.training.train import train

    data = Path(args.data)
    if (data / PACK).is_file():
        data = unpack(data, args.work_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            print("no CUDA device: training on the CPU", flush=True)
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32   # the fp32 attention sums' products
        name = torch.cuda.get_device_name(device)
    else:
        import platform
        name = platform.processor() or "cpu"
    t = time.monotonic()
    dataset = TokenDataset(data)
    dataset.music_stats()
    startup_s = time.monotonic() - t + 2     # train() loads the data again before its first step
    model_cfg, train_cfg = load_config(args.config)
    if args.init_from:
        # The weights decide the model's shape; the config gives the training settings.
        model_cfg = load_model(args.init_from)[0].cfg
    import dataclasses
    model_cfg = dataclasses.replace(model_cfg, n_genres=len(dataset.genres))
    summary = {"device": name, "torch": torch.__version__, "config": args.config,
               "init_from": args.init_from, "max_minutes": args.max_minutes}
    final_s = 10.0                           # the final checkpoint and the export
    if args.calibrate_steps:
        step_s, eval_s, save_s = time_steps(model_cfg, train_cfg, dataset, device,
                                            args.calibrate_steps)
        final_s = 2 * save_s + 5
        # The steps get what is left after train()'s start and the final checkpoint, less a
        # 15% margin for a machine that slows down (the loop also logs and syncs every step).
        left = args.max_minutes * 60 - (time.monotonic() - T0) - final_s
        budget = 0.85 * (left - startup_s)
        train_cfg = schedule(train_cfg, step_s, eval_s, save_s, budget, args.max_steps)
        tokens = train_cfg.batch_size * train_cfg.crop_len
        print(f"{name}: {1e3 * step_s:.1f} ms a step of {train_cfg.batch_size}x"
              f"{train_cfg.crop_len} ({tokens / step_s:,.0f} tokens/s); {budget / 60:.1f} min "
              f"left -> max_steps {train_cfg.max_steps}, warm-up {train_cfg.warmup_steps}, "
              f"validation every {train_cfg.eval_every}", flush=True)
        summary.update({"calibrated_step_s": step_s, "calibrated_tokens_per_s": tokens / step_s})
    elif args.max_steps:
        train_cfg = dataclasses.replace(train_cfg, max_steps=args.max_steps)
    import yaml
    config_path = Path(tempfile.mkdtemp()) / "config.yaml"
    config_path.write_text(yaml.safe_dump({"model": config_to_dict(model_cfg),
                                           "train": config_to_dict(train_cfg)}, sort_keys=False))
    # The hard stop: train() counts its own minutes; what is left of ours, less the final
    # checkpoint's and the export's time. The schedule above normally ends well before it.
    minutes = max(0.05, args.max_minutes - (time.monotonic() - T0 + final_s) / 60)
    result = train(str(config_path), data, args.output, init_from=args.init_from,
                   max_minutes=minutes, device=device.type, progress=args.progress)
    print(result.describe(), flush=True)
    summary.update({"steps": result.step, "max_steps": result.max_steps,
                    "stopped_early": result.stopped_early, "train_loss": result.train_loss,
                    "valid_loss": result.valid_loss, "tokens_per_s": result.tokens_per_s,
                    "elapsed_s": time.monotonic() - T0, "output": str(args.output)})
    if args.export:
        export(Path(args.output), args.export, args.part_mib, summary)
        print(f"exported to {args.export}: {summary['weights']}")
    print(json.dumps({k: v for k, v in summary.items() if k != "weights"}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="dataset folder -> compact folder (on the CPU machine)")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--max-mib", type=float, default=40.0)
    p.add_argument("--preset", type=int, default=6, help="xz preset 0-9")
    t = sub.add_parser("train", help="train inside --max-minutes (on the GPU machine)")
    t.add_argument("--data", required=True, help="a packed folder (pack) or a dataset folder")
    t.add_argument("-o", "--output", required=True, help="run folder (must not hold a run)")
    t.add_argument("--max-minutes", type=float, required=True,
                   help="wall time of the whole command, unpacking and calibration included")
    t.add_argument("--config", default="gpu_10min", help="preset or YAML (default gpu_10min)")
    t.add_argument("--init-from", default=None, help="start from these weights (their model "
                   "config is used; the config gives the training settings)")
    t.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    t.add_argument("--calibrate-steps", type=int, default=10,
                   help="steps timed to size max_steps to the time limit (0: the config's)")
    t.add_argument("--max-steps", type=int, default=None, help="at most this many steps")
    t.add_argument("--export", default=None, help="also write the results in small files here")
    t.add_argument("--part-mib", type=float, default=15.0, help="largest exported file")
    t.add_argument("--work-dir", default=None, help="where a packed dataset is unpacked")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (CPU runs)")
    t.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="TF32 tensor cores for the float32 attention products (CUDA)")
    t.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    if args.command == "pack":
        pack(args.data, args.out, args.max_mib, args.preset)
    else:
        train_main(args)


if __name__ == "__main__":
    main()
