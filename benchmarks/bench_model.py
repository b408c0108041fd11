"""Speed of the CMT on this machine: training tokens/s, generation tokens/s, and generation
cost per token at 1k vs 10k tokens of context (should be flat: O(1) recurrent step).

    python benchmarks/bench_model.py [--configs default paper] [--threads 1 2] [--context 10000]

Figures go to docs/TRAINING.md. Random weights and random tokens: speed does not depend on them.
"""

import argparse
import dataclasses
import time

import torch

from vbgm_core.model import CMT, load_config, masked_losses
from vbgm_core.training.train import make_optimizer


def random_batch(cfg, B, L, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(1, v, (B, L), generator=g) for v in cfg.vocab_sizes], -1)
    beat = torch.arange(L).expand(B, L) // 8
    timing = (100 * beat // max(int(beat.max()), 1)).clamp(max=100)
    return (tokens, beat, timing, torch.zeros(B, dtype=torch.long),
            torch.ones(B, 5, dtype=torch.long))


def train_tokens_per_s(model_cfg, train_cfg, batch, crop, steps):
    torch.manual_seed(0)
    model = CMT(model_cfg).train()
    opt = make_optimizer(model, train_cfg)
    data = random_batch(model_cfg, batch, crop)
    times = []
    for i in range(steps + 1):          # the first step warms up allocators and kernels
        t = time.perf_counter()
        losses, _ = masked_losses(model(*data), data[0])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return batch * crop * steps / sum(times[1:])


@torch.no_grad()
def generation_times(model_cfg, n_tokens, marks):
    """Seconds per step, averaged over 200-step windows ending at each mark."""
    torch.manual_seed(0)
    model = CMT(model_cfg).eval()
    tokens, beat, timing, genre, instruments = random_batch(model_cfg, 1, n_tokens)
    state = model.start(genre, instruments)    # also sets flush-to-zero for denormals
    stamps = [time.perf_counter()]
    for i in range(n_tokens):
        model.step(state, tokens[:, i], beat[:, i], timing[:, i])
        stamps.append(time.perf_counter())
    return {m: (stamps[m] - stamps[m - 200]) / 200 for m in marks}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["default", "paper"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--context", type=int, default=10000, help="long-context generation length")
    args = ap.parse_args()
    try:
        import fast_transformers.causal_product  # noqa: F401
        backends = ["torch", "fast"]
    except ImportError:
        backends = ["torch"]
        print("pytorch-fast-transformers not installed: torch backend only")

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    for name in args.configs:
        model_cfg, train_cfg = load_config(name)
        # The paper's 2048-token crops x 8 do not fit a quick CPU run: 1 x 1024 there.
        batch, crop = (train_cfg.batch_size, train_cfg.crop_len) if name != "paper" else (1, 1024)
        n_params = sum(p.numel() for p in CMT(model_cfg).parameters())
        print(f"\n== {name}: {model_cfg.n_layers} layers, d {model_cfg.d_model}, "
              f"{n_params / 1e6:.1f} M parameters")
        for threads in args.threads:
            torch.set_num_threads(threads)
            rates = {}
            for backend in backends:
                cfg = dataclasses.replace(model_cfg, attention=backend)
                rates[backend] = train_tokens_per_s(cfg, train_cfg, batch, crop, args.train_steps)
                print(f"train  {backend:5s} threads={threads} batch {batch}x{crop}: "
                      f"{rates[backend]:8,.0f} tokens/s")
            if "fast" in rates:
                print(f"train  torch/fast ratio: {rates['torch'] / rates['fast']:.2f}")
            # The recurrent step is the same code for both backends.
            per = generation_times(model_cfg, 1200, [1000, 1200])
            print(f"generate     threads={threads}: {1 / per[1200]:8,.0f} tokens/s "
                  f"({1e3 * per[1200]:.2f} ms/token at ~1.1k context)")
    torch.set_num_threads(1)
    model_cfg, _ = load_config(args.configs[0])
    per = generation_times(model_cfg, args.context, [1000, args.context])
    print(f"\n== {args.configs[0]}, 1 thread: ms/token at 1k context {1e3 * per[1000]:.3f}, "
          f"at {args.context // 1000}k {1e3 * per[args.context]:.3f}, "
          f"ratio {per[args.context] / per[1000]:.2f}")


if __name__ == "__main__":
    main()
