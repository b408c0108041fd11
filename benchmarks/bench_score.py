"""End-to-end `vbgm score` time per stage against clip length, and peak memory.

    python benchmarks/bench_score.py [--clip V] [--lengths 10 60 300 600] [--model M] [--quick]

A real clip (../shared/videos/bottle-detection.mp4, else the bundled Big Buck Bunny excerpt) is
looped with ffmpeg (stream copy) to each length. Each length is scored in a fresh process that
times the stages the way ``score_video`` runs them: analysis (``analyze_video``), generation
(``generate_for_rhythm``, control 0.7), rendering (FluidSynth to WAV) and muxing (ffmpeg), and
reports its peak RSS (``ru_maxrss``: torch, FluidSynth and OpenCV included). Prints seconds per
stage, the whole job as a fraction of the clip's duration (< 1 = faster than real time),
generation tokens/s, and peak memory. The model is ``--model``, else the bundled one, else a
randomly initialised ``default``-config CMT written to a temporary file: the time per token does
not depend on the weights, but tokens per bar do (random weights write denser music than a
trained model), so its generation time is pessimistic. Figures: docs/PERFORMANCE.md.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = (REPO.parent / "shared" / "videos" / "bottle-detection.mp4",
         REPO / "examples" / "media" / "bigbuckbunny.mp4")
BUNDLED = REPO / "vbgm_core" / "assets" / "model.safetensors"


def child(clip, model, out_dir, seed):
    """Score ``clip`` stage by stage in this process; print one JSON line."""
    from vbgm_core.api import SAMPLE_RATE, ScoreOptions, Scorer
    from vbgm_core.audio.mux import mux
    from vbgm_core.audio.render import write_wav

    t = {}
    t0 = time.perf_counter()
    scorer = Scorer.from_pretrained(model)
    t["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rhythm = scorer.analyze(clip)
    t["analysis"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tokens, midi = scorer.generate(rhythm, ScoreOptions(genre=scorer.genres[0], seed=seed))
    t["generation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    wav = write_wav(scorer.render(midi, rhythm), SAMPLE_RATE, Path(out_dir) / "music.wav")
    t["rendering"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mux(clip, wav, Path(out_dir) / "scored.mp4")
    t["muxing"] = time.perf_counter() - t0
    print(json.dumps({"duration_s": rhythm.duration_s, "bars": rhythm.n_bars,
                      "tokens": len(tokens), "seconds": t,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def random_model(folder):
    """A randomly initialised default-config CMT saved like a trained one."""
    import torch

    from vbgm_core.model import CMT, load_config
    from vbgm_core.model.checkpoint import save_model

    torch.manual_seed(0)
    path = Path(folder) / "random-default.safetensors"
    save_model(path, CMT(load_config("default")[0]), {"genres": ["pop"]})
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, default=next((c for c in CLIPS if c.is_file()), None))
    ap.add_argument("--lengths", nargs="+", type=float, default=[10, 60, 300, 600],
                    help="clip lengths in seconds")
    ap.add_argument("--model", type=Path, help="model file (default: the bundled model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="10 s and 60 s only")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # CLIP OUT_DIR, with --model
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.model, args.child[1], args.seed)
    lengths = [10, 60] if args.quick else args.lengths

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or (BUNDLED if BUNDLED.is_file() else None)
        if model is None:
            model = random_model(tmp)
            print("no bundled model and no --model: a randomly initialised default-config CMT "
                  "(generation time is pessimistic: random weights write denser music)")
        print(f"clip {args.clip}; model {model}; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.1f}")
        stages = ("analysis", "generation", "rendering", "muxing")
        print(f"{'clip':>7} {'bars':>5} {'tokens':>7} " + " ".join(f"{s:>10}" for s in stages)
              + f" {'total':>8} {'x clip':>7} {'tok/s':>6} {'peak MiB':>9} {'load':>5}")
        for length in lengths:
            clip = tmp / f"clip_{length:g}s.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i",
                            str(args.clip), "-t", f"{length:g}", "-c", "copy", str(clip)],
                           check=True)
            out = tmp / f"out_{length:g}"
            out.mkdir()
            run = subprocess.run([sys.executable, __file__, "--child", str(clip), str(out),
                                  "--model", str(model), "--seed", str(args.seed)],
                                 capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{length:g} s clip failed:\n{run.stderr[-2000:]}")
            r = json.loads(run.stdout.strip().splitlines()[-1])
            sec = r["seconds"]
            total = sum(sec[s] for s in stages)
            print(f"{r['duration_s']:6.1f}s {r['bars']:5d} {r['tokens']:7d} "
                  + " ".join(f"{sec[s]:9.2f}s" for s in stages)
                  + f" {total:7.1f}s {total / r['duration_s']:7.3f} "
                  f"{r['tokens'] / sec['generation']:6.0f} {r['peak_rss_mib']:9.0f} "
                  f"{os.getloadavg()[0]:5.1f}", flush=True)
            print(f"{'':>8} share of the job: " + ", ".join(
                f"{s} {100 * sec[s] / total:.0f}%" for s in stages)
                + f"; model load {sec['load']:.2f} s (not in total)", flush=True)


if __name__ == "__main__":
    main()
