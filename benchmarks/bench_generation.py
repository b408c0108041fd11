"""Generation with the recurrent state vs recomputing the whole prefix at every step.

    python benchmarks/bench_generation.py [--tokens 500 1000 2000] [--model M] [--quick]

The authors' code (METHOD.md §6) runs the transformer over the whole sequence so far for every
new token: O(n) per token, O(n^2) per piece. vbgm keeps the linear attention's recurrent state:
O(1) per token (``CMT.start`` / ``CMT.step``). Both ways here produce the next token's logits
from the same model, one thread (the generation setting, ``set_cpu_generation_threads``), for
the same number of tokens; the tokens are random (speed does not depend on them). Without
``--model`` the model is a randomly initialised ``default``-config CMT (speed does not depend on
the weights either). Prints tokens/s of each way and their ratio. Figures: docs/PERFORMANCE.md.
"""

import argparse
import os
import time

import torch

from vbgm_core.model import CMT, load_config
from vbgm_core.model.cmt import set_cpu_generation_threads


def random_piece(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(1, v, (1, n), generator=g) for v in cfg.vocab_sizes], -1)
    beat = torch.arange(n)[None] // 8
    timing = (100 * beat // max(int(beat.max()), 1)).clamp(max=100)
    return tokens, beat, timing, torch.zeros(1, dtype=torch.long), torch.ones(1, 5)


@torch.no_grad()
def recurrent(model, piece):
    """Seconds to produce n tokens' logits with the recurrent state."""
    tokens, beat, timing, genre, instruments = piece
    t0 = time.perf_counter()
    state = model.start(genre, instruments)
    for i in range(tokens.shape[1]):
        h = state.hidden
        model.type_logits(h)
        model.attribute_logits(h, tokens[:, i, 0])
        model.step(state, tokens[:, i], beat[:, i], timing[:, i])
    return time.perf_counter() - t0


@torch.no_grad()
def recompute(model, piece):
    """Seconds to produce n tokens' logits by running ``forward`` on the growing prefix (the
    prefix's last row is the token being predicted: forward drops it from the input)."""
    tokens, beat, timing, genre, instruments = piece
    torch.set_flush_denormal(True)  # as CMT.start does for the recurrent way
    t0 = time.perf_counter()
    for i in range(tokens.shape[1]):
        model(tokens[:, :i + 1], beat[:, :i + 1], timing[:, :i + 1], genre, instruments)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", nargs="+", type=int, default=[500, 1000, 2000])
    ap.add_argument("--model", help="model file (default: random default-config CMT)")
    ap.add_argument("--quick", action="store_true", help="100 and 250 tokens only")
    args = ap.parse_args()
    sizes = [100, 250] if args.quick else args.tokens
    if args.model:
        from vbgm_core.model.checkpoint import load_model

        model, _ = load_model(args.model)
        what = args.model
    else:
        torch.manual_seed(0)
        model = CMT(load_config("default")[0])
        what = "random default-config CMT"
    model.eval()
    set_cpu_generation_threads()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{what}: {model.cfg.n_layers} layers, d {model.cfg.d_model}, "
          f"{n_params / 1e6:.1f} M parameters; torch {torch.__version__}, 1 thread, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    recurrent(model, random_piece(model.cfg, 50))  # warm-up
    print(f"{'tokens':>7} {'recurrent tok/s':>16} {'recompute tok/s':>16} {'ratio':>7}")
    for n in sizes:
        piece = random_piece(model.cfg, n)
        fast = recurrent(model, piece)
        slow = recompute(model, piece)
        print(f"{n:7d} {n / fast:16,.0f} {n / slow:16,.1f} {slow / fast:7.1f}x   "
              f"(recurrent {fast:.2f} s, recompute {slow:.1f} s; load {os.getloadavg()[0]:.1f})",
              flush=True)


if __name__ == "__main__":
    main()
