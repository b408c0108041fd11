"""Generation speed: the fused recurrent step vs the reference step, alone and in the sampler.

    python benchmarks/bench_generation.py [--tokens 1000 5000 20000] [--model M | --random]
                                          [--quick] [--recompute [N ...]] [--sampling S ...]

Two measurements, each in the same run for both steps of the same model (one thread, the
generation setting ``set_cpu_generation_threads``), so their ratio holds on a busy machine:

- **step alone**: ``CMT.start``, then ``CMT.step`` for n random tokens (speed does not depend on
  the tokens), "old" = the reference step (``Block.step``, ``CMT.fused_generation = False``),
  "new" = the fused step (:class:`vbgm_core.model.cmt.FusedWeights`);
- **sampler**: ``ControlledSampler.generate`` (free music at control 0.7 with a visual beat
  every half bar, all instruments, seed 0) for as many bars as make about n tokens; also says
  whether both steps gave the same tokens.

Prints tokens/s of each and new/old. The model is the bundled one unless ``--model`` or
``--random`` (a randomly initialised ``default``-config CMT) is given.

``--recompute`` adds the older comparison: the recurrent state vs running ``CMT.forward`` over
the whole prefix for every token as the authors' code does (METHOD.md §6), O(1) vs O(n) per
token (default 500 1000 2000 tokens). Figures: docs/PERFORMANCE.md.
"""

import argparse
import os
import time
from pathlib import Path

import torch

from vbgm_core.model import CMT, load_config
from vbgm_core.model.cmt import set_cpu_generation_threads

BUNDLED = Path(__file__).resolve().parents[1] / "vbgm_core" / "assets" / "model.safetensors"


def random_piece(cfg, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(1, v, (1, n), generator=g) for v in cfg.vocab_sizes], -1)
    beat = torch.arange(n)[None] // 8
    timing = (100 * beat // max(int(beat.max()), 1)).clamp(max=100)
    return tokens, beat, timing, torch.zeros(1, dtype=torch.long), torch.ones(1, 5)


def step_alone(model, piece, fused):
    """Seconds for start + n steps."""
    tokens, beat, timing, genre, instruments = piece
    model.fused_generation = fused
    t0 = time.perf_counter()
    state = model.start(genre, instruments)
    for i in range(tokens.shape[1]):
        model.step(state, tokens[:, i], beat[:, i], timing[:, i])
    return time.perf_counter() - t0


def sampler(model, n_bars, fused, sampling=()):
    """(seconds, tokens) of the controlled sampler over n_bars bars (``sampling``: the CLI's
    --sampling settings; default: the product's, genre guidance on)."""
    from vbgm_core.music.sampler import ControlledSampler, Targets
    from vbgm_core.options import ScoreOptions

    model.fused_generation = fused
    beats = {t: 2 for t in range(0, 16 * n_bars, 8)}
    targets = Targets(n_bars, [4 + (b % 5) for b in range(n_bars)], beats)
    options = ScoreOptions(sampling=list(sampling))
    s = ControlledSampler(model, 0, ["drums", "piano", "guitar", "bass", "strings"],
                          options.control, options.seed, options.sampling,
                          min_density=options.min_density)
    t0 = time.perf_counter()
    tokens = s.generate(targets)
    return time.perf_counter() - t0, tokens


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


def load():
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", nargs="+", type=int, default=[1000, 5000, 20000])
    ap.add_argument("--model", help=f"model file (default: {BUNDLED.name}, the bundled model)")
    ap.add_argument("--random", action="store_true", help="a random default-config CMT")
    ap.add_argument("--quick", action="store_true", help="200 and 1000 tokens only")
    ap.add_argument("--sampling", nargs="+", default=[], metavar="ATTR.SETTING=V",
                    help="the sampler's settings, as the CLI's (e.g. genre.guidance=0: unguided)")
    ap.add_argument("--recompute", nargs="*", type=int, metavar="N",
                    help="also recurrent vs recompute at these sizes (default 500 1000 2000)")
    args = ap.parse_args()
    sizes = [200, 1000] if args.quick else args.tokens
    if args.random:
        torch.manual_seed(0)
        model = CMT(load_config("default")[0])
        what = "random default-config CMT"
    else:
        from vbgm_core.model.checkpoint import load_model

        path = args.model or BUNDLED
        model, _ = load_model(path)
        what = str(path)
    model.eval()
    set_cpu_generation_threads()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{what}: {model.cfg.n_layers} layers, d {model.cfg.d_model}, "
          f"{n_params / 1e6:.1f} M parameters; torch {torch.__version__}, 1 thread, "
          f"{os.cpu_count()} CPUs, load average {load():.1f}")

    # Tokens per bar of this model under the sampler, to size the sampler runs.
    t0 = time.perf_counter()
    for fused in (False, True):          # warm-up of both paths
        step_alone(model, random_piece(model.cfg, 50), fused)
    _, tokens = sampler(model, 16, True, args.sampling)
    per_bar = len(tokens) / 16
    print(f"sampler: ~{per_bar:.0f} tokens per bar (warm-up {time.perf_counter() - t0:.1f} s)")
    print(f"{'tokens':>7} | {'step old':>9} {'step new':>9} {'new/old':>7} | "
          f"{'sampler old':>11} {'sampler new':>11} {'new/old':>7} {'same tokens':>11} | load")
    for n in sizes:
        piece = random_piece(model.cfg, n)
        s_old = n / step_alone(model, piece, False)
        s_new = n / step_alone(model, piece, True)
        n_bars = max(1, round(n / per_bar))
        t_old, tok_old = sampler(model, n_bars, False, args.sampling)
        t_new, tok_new = sampler(model, n_bars, True, args.sampling)
        same = tok_old.shape == tok_new.shape and bool((tok_old == tok_new).all())
        per_bar = len(tok_new) / n_bars                  # a better estimate for the next size
        print(f"{n:7d} | {s_old:9,.0f} {s_new:9,.0f} {s_new / s_old:6.2f}x | "
              f"{len(tok_old) / t_old:11,.0f} {len(tok_new) / t_new:11,.0f} "
              f"{(len(tok_new) / t_new) / (len(tok_old) / t_old):6.2f}x {str(same):>11} | "
              f"{load():.1f}   ({n_bars} bars, {len(tok_new)} tokens)", flush=True)
    model.fused_generation = True

    if args.recompute is not None:
        print(f"\n{'tokens':>7} {'recurrent tok/s':>16} {'recompute tok/s':>16} {'ratio':>7}")
        recurrent(model, random_piece(model.cfg, 50))  # warm-up
        for n in args.recompute or [500, 1000, 2000]:
            piece = random_piece(model.cfg, n)
            fast = recurrent(model, piece)
            slow = recompute(model, piece)
            print(f"{n:7d} {n / fast:16,.0f} {n / slow:16,.1f} {slow / fast:7.1f}x   "
                  f"(recurrent {fast:.2f} s, recompute {slow:.1f} s; load {load():.1f})",
                  flush=True)


if __name__ == "__main__":
    main()
