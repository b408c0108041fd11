"""Training speed and bf16 accuracy on this CPU (issue 24): one full training step (forward +
backward + gradient clipping + AdamW), as `vbgm train` runs it.

    python benchmarks/bench_train.py --data data/midi_genre --threads 1 2 --rounds 4 \
        --accuracy-steps 30 --valid

- **Speed**: the variants (precision fp32 / bf16 autocast; batch shapes of equal tokens, e.g.
  16x256, 8x512, 4x1024; optionally ``--compile``) are timed *interleaved*: every round times
  each variant for ``--steps`` steps, in a rotated order, so that the load of a shared machine
  falls on all of them alike. Reported per variant: the median and the best tokens/s over the
  rounds, and the paired ratio to the first variant (median, min-max over the rounds).
- **Data loading**: the time `CropSampler` takes to draw a batch (with the config's
  augmentation), cold (songs seen for the first time) and warm (cached), as a share of a step.
- **Accuracy** (``--accuracy-steps N``): the training-loss curve of N steps from the same
  initial weights and the same crops in fp32 and in bf16, against the curve of fp32 with
  another dropout seed (the noise floor a precision change must stay within).
- **Validation** (``--valid``): the validation loss (the training loop's fixed crops) of the
  bundled model in fp32 and in bf16.

Figures go to docs/TRAINING.md ("Measured speed"). Threads: one torch thread per value of
``--threads``, in the same process.
"""

import argparse
import copy
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from vbgm_core.model import CMT, load_config, masked_losses
from vbgm_core.training.augment import drop_controls
from vbgm_core.training.data import TokenDataset
from vbgm_core.training.train import (
    CropSampler,
    _evaluate,
    _step_seed,
    lr_factor,
    make_optimizer,
    split_rows,
)

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "vbgm_core" / "assets" / "model.safetensors"


def autocast(bf16):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def random_batch(cfg, B, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(1, v, (B, L), generator=g) for v in cfg.vocab_sizes], -1)
    beat = torch.arange(L).expand(B, L) // 8
    return {"tokens": tokens, "beat_index": beat.contiguous(),
            "timing": (100 * beat // max(int(beat.max()), 1)).clamp(max=100).contiguous(),
            "genre": torch.zeros(B, dtype=torch.long),
            "instruments": torch.ones(B, 5, dtype=torch.long)}


class Data:
    """Real crops of the dataset's training songs (the config's augmentation), or random
    tokens without a dataset."""

    def __init__(self, path, train_cfg):
        self.cfg = train_cfg
        self.ds = TokenDataset(path) if path else None
        self.samplers = {}
        if self.ds:
            self.train_rows, self.valid_rows = split_rows(self.ds, train_cfg.valid_fraction)

    def sampler(self, crop):
        if crop not in self.samplers:
            c = self.cfg
            self.samplers[crop] = CropSampler(self.ds, self.train_rows, crop, c.start_crop_prob,
                                              c.transpose, c.genre_balance)
        return self.samplers[crop]

    def batch(self, model_cfg, B, L, step):
        """Inputs of training step ``step`` (inputs with the control dropout, targets)."""
        if self.ds is None:
            b = random_batch(model_cfg, B, L, step)
            return b, b
        g = torch.Generator().manual_seed(_step_seed(self.cfg.seed, step, 0, 0))
        batch = self.sampler(L).batch(B, g)
        inputs = dict(batch)
        inputs["tokens"], inputs["timing"] = drop_controls(batch, self.cfg.timing_dropout,
                                                           self.cfg.control_dropout, g)
        return inputs, batch


def step_on(model, opt, inputs, targets, bf16, grad_clip):
    with autocast(bf16):
        losses, _ = masked_losses(model(**inputs), targets["tokens"])
    opt.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return {a: v.item() for a, v in losses.items()}


# ------------------------------------------------------------------------------- speed

def speed(model_cfg, train_cfg, data, variants, threads, rounds, steps):
    """Interleaved timing of the variants; returns {name: [seconds per step, per round]}."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = CMT(model_cfg).train()
    runs = {}
    for v in variants:
        model = copy.deepcopy(base)
        net = torch.compile(model) if v["compile"] else model
        opt = make_optimizer(model, train_cfg)
        batches = [data.batch(model_cfg, v["B"], v["L"], s) for s in range(steps + 1)]
        t = time.perf_counter()
        step_on(net, opt, *batches[0], v["bf16"], train_cfg.grad_clip)   # warm-up (compiles)
        warm = time.perf_counter() - t
        if v["compile"]:
            print(f"  {v['name']}: compiled in {warm:.0f} s (first step)", flush=True)
        runs[v["name"]] = (net, opt, batches, v, [])
    names = list(runs)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            net, opt, batches, v, times = runs[name]
            t = time.perf_counter()
            for s in range(1, steps + 1):
                step_on(net, opt, *batches[s], v["bf16"], train_cfg.grad_clip)
            times.append((time.perf_counter() - t) / steps)
    return {name: run[4] for name, run in runs.items()}


def report_speed(times, variants, threads):
    """Print median / best tokens per second and paired ratios to the first variant."""
    ref = variants[0]["name"]
    rows = []
    print(f"\n== threads {threads}: tokens/s (median, best of {len(times[ref])} rounds); "
          f"speed ratio to {ref} (paired per round: median, min-max)")
    for v in variants:
        t = times[v["name"]]
        tokens = v["B"] * v["L"]
        ratios = [a / b for a, b in zip(times[ref], t)]
        row = {"variant": v["name"], "threads": threads, "ms_per_step": 1e3 * statistics.median(t),
               "tokens_per_s": tokens / statistics.median(t), "best_tokens_per_s": tokens / min(t),
               "ratio": statistics.median(ratios), "ratio_min": min(ratios),
               "ratio_max": max(ratios)}
        rows.append(row)
        print(f"  {v['name']:22s} {row['ms_per_step']:7.0f} ms/step {row['tokens_per_s']:7,.0f} "
              f"tok/s (best {row['best_tokens_per_s']:7,.0f})   x{row['ratio']:.2f} "
              f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})", flush=True)
    return rows


# ------------------------------------------------------------------------------- data loading

def data_cost(data, model_cfg, B, L, n=30):
    """Milliseconds to draw a batch: cold (new songs) and warm (cached songs)."""
    sampler = data.sampler(L)
    sampler._positions.clear()
    cold = []
    for s in range(n):
        t = time.perf_counter()
        data.batch(model_cfg, B, L, 10_000 + s)
        cold.append(time.perf_counter() - t)
    for row in sampler.rows:     # a long run has seen every song: warm cache
        sampler._song(row)
    warm = []
    for s in range(n):
        t = time.perf_counter()
        data.batch(model_cfg, B, L, 20_000 + s)
        warm.append(time.perf_counter() - t)
    return 1e3 * statistics.median(cold), 1e3 * statistics.median(warm)


# ------------------------------------------------------------------------------- accuracy

def loss_curve(model_cfg, train_cfg, data, init, bf16, n_steps, dropout_seed=0):
    """Training losses of ``n_steps`` steps (real schedule: warm-up) from ``init`` weights."""
    model = copy.deepcopy(init).train()
    opt = make_optimizer(model, train_cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, train_cfg))
    curve = []
    for s in range(n_steps):
        inputs, targets = data.batch(model_cfg, train_cfg.batch_size, train_cfg.crop_len, s)
        torch.manual_seed(_step_seed(train_cfg.seed + dropout_seed, s, 0, 1))
        losses = step_on(model, opt, inputs, targets, bf16, train_cfg.grad_clip)
        sched.step()
        curve.append(sum(losses.values()))
    return curve, model


def compare_curves(name, a, b, c):
    d_prec = [abs(x - y) for x, y in zip(a, b)]
    d_seed = [abs(x - y) for x, y in zip(a, c)]
    tail = max(1, len(a) // 3)
    out = {"init": name, "steps": len(a), "fp32_first": a[0], "fp32_last": a[-1],
           "bf16_last": b[-1], "fp32_other_dropout_last": c[-1],
           "mean_abs_bf16_vs_fp32": statistics.mean(d_prec), "max_abs_bf16_vs_fp32": max(d_prec),
           "mean_abs_bf16_vs_fp32_last_third": statistics.mean(d_prec[-tail:]),
           "mean_abs_dropout_seed": statistics.mean(d_seed), "max_abs_dropout_seed": max(d_seed),
           "mean_abs_dropout_seed_last_third": statistics.mean(d_seed[-tail:]),
           "mean_bf16_minus_fp32_last_third": statistics.mean(
               [y - x for x, y in zip(a[-tail:], b[-tail:])])}
    print(f"\n== loss curves, {name}, {len(a)} steps: fp32 {a[0]:.3f} -> {a[-1]:.3f}, "
          f"bf16 -> {b[-1]:.3f}, fp32 other dropout seed -> {c[-1]:.3f}")
    print(f"  |bf16 - fp32|: mean {out['mean_abs_bf16_vs_fp32']:.4f}, max "
          f"{out['max_abs_bf16_vs_fp32']:.4f}, last third {out['mean_abs_bf16_vs_fp32_last_third']:.4f}"
          f" (signed {out['mean_bf16_minus_fp32_last_third']:+.4f})")
    print(f"  |fp32 seed a - seed b| (noise floor): mean {out['mean_abs_dropout_seed']:.4f}, max "
          f"{out['max_abs_dropout_seed']:.4f}, last third "
          f"{out['mean_abs_dropout_seed_last_third']:.4f}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default", help="model + train config (preset or YAML)")
    ap.add_argument("--data", default=None, help="dataset (default: random tokens)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--shapes", nargs="+", default=["8x512", "16x256", "4x1024"],
                    help="batch x crop shapes; the first is the baseline")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--compile", action="store_true", help="also torch.compile (minutes)")
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds (0: no speed test)")
    ap.add_argument("--steps", type=int, default=2, help="steps per timed measurement")
    ap.add_argument("--accuracy-steps", type=int, default=0, help="loss-curve comparison length")
    ap.add_argument("--accuracy-init", nargs="+", default=["fresh"], choices=["fresh", "bundled"],
                    help="initial weights of the loss curves: random, or the bundled model "
                         "(with its own model config)")
    ap.add_argument("--valid", action="store_true", help="bundled model: valid loss fp32 vs bf16")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()

    model_cfg, train_cfg = load_config(args.config)
    data = Data(args.data, train_cfg)
    if data.ds:
        model_cfg = dataclasses.replace(model_cfg, n_genres=len(data.ds.genres))
    print(f"torch {torch.__version__}, {args.config}: {model_cfg.n_layers} layers, d "
          f"{model_cfg.d_model}, {sum(p.numel() for p in CMT(model_cfg).parameters()) / 1e6:.1f} M"
          f" parameters; data: {args.data or 'random tokens'}")
    with open("/proc/loadavg") as f:
        print(f"load average at start: {f.read().split()[:3]}")
    result = {"config": args.config, "data": args.data, "speed": []}

    variants = []
    for shape in args.shapes:
        B, L = (int(x) for x in shape.split("x"))
        for p in args.precisions:
            variants.append({"name": f"{p} {shape}", "B": B, "L": L, "bf16": p == "bf16",
                             "compile": False})
    if args.compile:
        B, L = (int(x) for x in args.shapes[0].split("x"))
        for p in args.precisions:
            variants.append({"name": f"{p} {args.shapes[0]} compiled", "B": B, "L": L,
                             "bf16": p == "bf16", "compile": True})
    for threads in args.threads if args.rounds else []:
        times = speed(model_cfg, train_cfg, data, variants, threads, args.rounds, args.steps)
        result["speed"] += report_speed(times, variants, threads)

    if data.ds:
        torch.set_num_threads(1)
        B, L = (int(x) for x in args.shapes[0].split("x"))
        cold, warm = data_cost(data, model_cfg, B, L)
        step_ms = min((r["ms_per_step"] for r in result["speed"]
                       if r["threads"] == args.threads[0]), default=float("nan"))
        result["data_ms"] = {"cold": cold, "warm": warm, "fastest_step_ms": step_ms}
        print(f"\n== data loading ({B}x{L}, the config's augmentation): {cold:.1f} ms a batch "
              f"cold (songs read the first time), {warm:.2f} ms warm; the fastest step above "
              f"takes {step_ms:.0f} ms: {100 * cold / step_ms:.2f}% / {100 * warm / step_ms:.3f}%")

    torch.set_num_threads(args.threads[0])
    if args.accuracy_steps:
        result["accuracy"] = []
        for kind in args.accuracy_init:
            if kind == "fresh":
                torch.manual_seed(0)
                name, init = f"fresh init ({args.config})", CMT(model_cfg)
            else:
                from vbgm_core.model.checkpoint import load_model
                init = load_model(BUNDLED)[0].float()
                name = f"bundled model, {args.config}'s train config"
            cfg = init.cfg
            a, _ = loss_curve(cfg, train_cfg, data, init, False, args.accuracy_steps)
            b, _ = loss_curve(cfg, train_cfg, data, init, True, args.accuracy_steps)
            c, _ = loss_curve(cfg, train_cfg, data, init, False, args.accuracy_steps, 1)
            row = compare_curves(name, a, b, c)
            row.update({"fp32": a, "bf16": b, "fp32_other_dropout": c})
            result["accuracy"].append(row)

    if args.valid and data.ds:
        from vbgm_core.model.checkpoint import load_model
        model, _ = load_model(BUNDLED)
        model = model.float()
        valid = CropSampler(data.ds, data.valid_rows, train_cfg.crop_len, 0.0)
        rows = {}
        for p in ("fp32", "bf16", "fp32"):   # fp32 twice: the evaluation is deterministic
            t = time.perf_counter()
            rows[p] = _evaluate(model, valid, train_cfg, torch.device("cpu"),
                                lambda bf=p == "bf16": autocast(bf))
            rows[p]["seconds"] = time.perf_counter() - t
        result["valid"] = rows
        print(f"\n== bundled model, validation loss ({train_cfg.eval_batches} batches of "
              f"{train_cfg.batch_size}x{train_cfg.crop_len}, the training loop's fixed crops): fp32 "
              f"{rows['fp32']['loss']:.4f} ({rows['fp32']['seconds']:.1f} s), bf16 "
              f"{rows['bf16']['loss']:.4f} ({rows['bf16']['seconds']:.1f} s), difference "
              f"{rows['bf16']['loss'] - rows['fp32']['loss']:+.4f}")
        print("  per attribute (bf16 - fp32): " + ", ".join(
            f"{a} {rows['bf16'][a] - rows['fp32'][a]:+.4f}" for a in rows["fp32"]
            if a not in ("loss", "seconds")))
    with open("/proc/loadavg") as f:
        print(f"\nload average at the end: {f.read().split()[:3]}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
