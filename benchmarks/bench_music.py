"""Does the music sound right? Issue 15's statistics for shared clips x genres x seeds, against
the held-out training songs' values by the same code (vbgm_core/music/quality.py).

    .venv/bin/python benchmarks/bench_music.py --end 24 --seeds 0 1 > bench_music.txt
    .venv/bin/python benchmarks/bench_music.py --end 24 --seeds 0 1 --before   # the old path

The pieces are what users get: ``Scorer.analyze / generate / render`` with default options at
C = 0.7. ``--before`` composes the path before issue 15 from the building blocks: no harmony
prior, no density floor, no articulation or dynamics, TimGM6mb, peak normalisation and a 1 s
fade.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vbgm_core.audio.render import render_audio
from vbgm_core.metrics.control import evaluate
from vbgm_core.metrics.quality import audio_quality, midi_quality
from vbgm_core.music.instruments import GROUPS
from vbgm_core.music.sampler import ControlledSampler, Targets
from vbgm_core.music.tokenizer import CPTokenizer
from vbgm_core.options import ScoreOptions
from vbgm_core.scorer import Scorer, clip_midi
from vbgm_core.training.data import TokenDataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SR = 44100
OLD_FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def reference(dataset, per_genre):
    """Mean statistics of held-out (test split) training songs, per_genre of each genre."""
    import miditoolkit

    ds = TokenDataset(dataset)
    rows = {}
    for row in ds.index:
        if row["split"] == "test":
            rows.setdefault(row["genre"], []).append(row)
    stats = []
    for genre, songs in sorted(rows.items()):
        for row in songs[:per_genre]:
            midi = miditoolkit.MidiFile(str(SHARED / "data/midi_genre" / row["path"]))
            stats.append(midi_quality(midi))
    return stats


def piece(scorer, rhythm, genre, seed, before):
    t0 = time.perf_counter()
    options = ScoreOptions(genre=genre, seed=seed, control=0.7)
    if before:
        plan = None
        sampler = ControlledSampler(scorer.model, scorer.genres.index(genre), GROUPS, 0.7, seed,
                                    harmony=None, min_density=0)
        tokens = sampler.generate(Targets.from_rhythm(rhythm))
        midi = clip_midi(CPTokenizer().decode(tokens, rhythm.tempo_bpm), rhythm.duration_s,
                         rhythm.tempo_bpm)
        audio = render_audio(midi, SR, soundfont=OLD_FONT, duration_s=rhythm.duration_s,
                             fade_out_s=1.0, loudness=None)
    else:
        plan = scorer.harmony_plan(rhythm, options)
        rhythm = rhythm.with_min_density(options.min_density)   # as Scorer.score does
        _, midi = scorer.generate(rhythm, options)
        audio = scorer.render(midi, rhythm, options)
    full = max(1, int(rhythm.duration_s * rhythm.tempo_bpm / 240 + 1e-6))
    control = evaluate(midi, [b.density for b in rhythm.bars[:full]],
                       [(b.tick, b.strength) for b in rhythm.visual_beats], rhythm.cuts,
                       rhythm.duration_s, rhythm.tempo_bpm, structure=False)
    return {**midi_quality(midi, rhythm.duration_s, plan and (plan.tonic, plan.mode)),
            **audio_quality(audio, SR),
            **{k: control[f"{k}_error"] for k in ("density", "strength", "time")},
            "key": plan.key_name if plan else None, "seconds": time.perf_counter() - t0}


def summary(rows, keys):
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if r.get(k) is not None], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = (float(v.mean()), float(v.min()), float(v.max())) if v.size else None
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=None, help="default: all shared clips")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--end", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--before", action="store_true", help="the path before issue 15")
    parser.add_argument("--reference-songs", type=int, default=20, help="per genre; 0 = skip")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()

    scorer = Scorer.from_pretrained()
    clips = args.clips or sorted(str(p) for p in (SHARED / "videos").glob("*.mp4"))
    rows = []
    for clip in clips:
        rhythm = scorer.analyze(clip, start=args.start, end=args.end)
        for genre in scorer.genres:
            for seed in args.seeds:
                r = piece(scorer, rhythm, genre, seed, args.before)
                r.update(clip=Path(clip).name, genre=genre, seed=seed, tempo=rhythm.tempo_bpm,
                         duration_s=rhythm.duration_s)
                rows.append(r)
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                  for k, v in r.items()}), flush=True)
    keys = ["out_of_scale", "pitch_class_entropy", "grooving", "longest_silence_s",
            "single_onset_bars", "distinct_velocities", "bass_above_c5", "end_gap_s",
            "final_chord_tonic", "loudness_lufs", "true_peak_dbtp", "clipped_samples",
            "density", "strength", "time"]
    print(f"\n{len(rows)} pieces ({'before' if args.before else 'after'} issue 15): mean (min, max)")
    generated = summary(rows, keys)
    ref = summary(reference(ROOT / "data/midi_genre", args.reference_songs),
                  keys) if args.reference_songs else {}
    print(f"{'statistic':22s} {'vbgm':>28s} {'held-out songs':>28s}")
    for k in keys:
        fmt = lambda s: "-" if not s else f"{s[0]:8.4f} ({s[1]:.3f}, {s[2]:.3f})"
        print(f"{k:22s} {fmt(generated[k]):>28s} {fmt(ref.get(k)):>28s}")
    silent = sum(r["longest_silence_s"] > 1.5 for r in rows)
    print(f"pieces with a silence over 1.5 s: {silent} of {len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
