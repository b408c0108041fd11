"""Does the music sound right? Issue 15's and issue 23's statistics for shared clips x genres x
seeds, against held-out (test split) training songs measured by the same code
(vbgm_core/metrics/quality.py, repetition.py, musdr.py).

    .venv/bin/python benchmarks/bench_music.py --end 24 --seeds 0 1 > bench_music.txt
    .venv/bin/python benchmarks/bench_music.py --end 24 --seeds 0 1 --before   # the old path
    .venv/bin/python benchmarks/bench_music.py --clips ../shared/videos/asl_gestures --option repetition=0

The pieces are what users get: ``Scorer.analyze / generate / render`` with default options at
C = 0.7 (``--option NAME=VALUE`` changes one, e.g. ``repetition=0``). ``--before`` composes the
path before issue 15 from the building blocks: no harmony prior, no density floor, no
articulation or dynamics, TimGM6mb, peak normalisation and a 1 s fade. A clip that is a folder
stands for the videos in it.

Issue 23's table: drum and pitched repetition (each bar's best Jaccard with an earlier bar of
its 6-bar window, metrics/repetition.py), the share of pitched bars that are exact copies,
grooving similarity, pitch-class entropy per bar (H1) and per 4 bars (H4), out-of-scale share
and control error; the real songs' figures are taken on their middle 6 bars
(``repetition.middle_window``), the pieces' on their whole length. Then the orchestration:
per genre and group, the total variation between the programs the pieces play and the genre's
distribution (``orchestration.distribution``), beside what draws from that distribution itself
would give for as many pieces (the sampling noise of a few pieces per genre).
"""

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from vbgm_core.audio.render import render_audio
from vbgm_core.metrics.control import evaluate
from vbgm_core.metrics.musdr import grooving_similarity, pitch_class_entropy
from vbgm_core.metrics.quality import audio_quality, midi_quality, out_of_scale_share
from vbgm_core.metrics.repetition import exact_copy_share, middle_window, repetition
from vbgm_core.music.instruments import GROUPS, track_group
from vbgm_core.music.orchestration import choose_programs, distribution
from vbgm_core.music.sampler import ControlledSampler, Targets
from vbgm_core.music.tokenizer import CPTokenizer
from vbgm_core.options import ScoreOptions
from vbgm_core.scorer import Scorer, clip_midi
from vbgm_core.training.data import TokenDataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SR = 44100
OLD_FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
WINDOW_BARS = 6
LONG_BARS = 4    # pieces this long have phrases to repeat (a 1-2 bar clip has next to none)
SEEDS_FOR_THE_DRAW = 1000

QUALITY_KEYS = ["out_of_scale", "pitch_class_entropy", "grooving", "longest_silence_s",
                "single_onset_bars", "distinct_velocities", "bass_above_c5", "end_gap_s",
                "final_chord_tonic", "loudness_lufs", "true_peak_dbtp", "clipped_samples",
                "density", "strength", "time"]
FORM_KEYS = ["drum_repetition", "pitched_repetition", "exact_copies", "grooving", "h1", "h4",
             "out_of_scale", "final_chord_tonic", "density", "strength", "time"]
TARGETS = {"drum_repetition": "0.75-0.95", "pitched_repetition": ">= 0.30",
           "exact_copies": "<= 0.20", "grooving": ">= 0.80", "h1": "real -10%",
           "h4": "real -10%", "out_of_scale": "<= 0.04", "final_chord_tonic": "1",
           "density": "<= 0.07", "strength": "<= 0.003", "time": "<= 0.002"}


def form_stats(midi):
    """Issue 23's figures of one piece (or one real song's window)."""
    return {"drum_repetition": repetition(midi, "drums", WINDOW_BARS),
            "pitched_repetition": repetition(midi, "pitched", WINDOW_BARS),
            "exact_copies": exact_copy_share(midi, "pitched", WINDOW_BARS),
            "grooving": grooving_similarity(midi),
            "h1": pitch_class_entropy(midi, 1), "h4": pitch_class_entropy(midi, 4),
            "out_of_scale": out_of_scale_share(midi)}


def reference(dataset, per_genre):
    """Held-out (test split) training songs, at most per_genre of each genre: issue 15's
    statistics of the whole song, and issue 23's of its middle 6 bars.

    Returns:
        (rows of midi_quality, rows of form_stats)."""
    import miditoolkit

    ds = TokenDataset(dataset)
    rows = {}
    for row in ds.index:
        if row["split"] == "test":
            rows.setdefault(row["genre"], []).append(row)
    quality, form = [], []
    for genre, songs in sorted(rows.items()):
        for row in songs[:per_genre]:
            midi = miditoolkit.MidiFile(str(SHARED / "data/midi_genre" / row["path"]))
            quality.append(midi_quality(midi))
            form.append({**form_stats(middle_window(midi, WINDOW_BARS)), "genre": genre})
    return quality, form


def piece(scorer, rhythm, genre, seed, before, options, audio=True):
    t0 = time.perf_counter()
    options = ScoreOptions.from_kwargs(ScoreOptions(genre=genre, seed=seed, control=0.7),
                                       **options)
    if before:
        plan = None
        sampler = ControlledSampler(scorer.model, scorer.genres.index(genre), GROUPS, 0.7, seed,
                                    harmony=None, min_density=0)
        tokens = sampler.generate(Targets.from_rhythm(rhythm))
        midi = clip_midi(CPTokenizer().decode(tokens, rhythm.tempo_bpm), rhythm.duration_s,
                         rhythm.tempo_bpm)
        sound = render_audio(midi, SR, soundfont=OLD_FONT, duration_s=rhythm.duration_s,
                             fade_out_s=1.0, loudness=None) if audio else None
    else:
        rhythm = rhythm.with_min_density(options.min_density)   # as Scorer.score does
        plan = scorer.harmony_plan(rhythm, options)
        _, midi = scorer.generate(rhythm, options)
        sound = scorer.render(midi, rhythm, options) if audio else None
    full = max(1, int(rhythm.duration_s * rhythm.tempo_bpm / 240 + 1e-6))
    control = evaluate(midi, [b.density for b in rhythm.bars[:full]],
                       [(b.tick, b.strength) for b in rhythm.visual_beats], rhythm.cuts,
                       rhythm.duration_s, rhythm.tempo_bpm, structure=False)
    programs = {track_group(i): i.program for i in midi.instruments if i.notes}
    return {**midi_quality(midi, rhythm.duration_s, plan and (plan.tonic, plan.mode)),
            **(audio_quality(sound, SR) if sound is not None else {}),
            **form_stats(midi),
            **{k: control[f"{k}_error"] for k in ("density", "strength", "time")},
            "programs": programs, "key": plan.key_name if plan else None,
            "seconds": time.perf_counter() - t0}


def summary(rows, keys):
    out = {}
    for k in keys:
        v = np.array([r[k] for r in rows if r.get(k) is not None], dtype=float)
        v = v[np.isfinite(v)]
        out[k] = (float(v.mean()), float(v.min()), float(v.max())) if v.size else None
    return out


def total_variation(counts, programs, p):
    """0.5 * sum |observed share - p| over the programs (those outside ``programs`` count too)."""
    n = sum(counts.values())
    observed = np.array([counts.get(int(q), 0) / n for q in programs])
    outside = sum(c for q, c in counts.items() if q not in set(programs.tolist())) / n
    return 0.5 * (np.abs(observed - p).sum() + outside)


def orchestration_table(rows, draws=500):
    """Per genre and group: pieces, the TV of the programs they play against the genre's
    distribution, and the mean TV by chance: as many programs drawn from the distribution
    itself, one per seed, each played by as many pieces as that seed's (a seed draws one
    program per genre and group whatever the clip, so a few seeds are a few draws)."""
    rng = np.random.default_rng(23)
    played, per_seed = defaultdict(Counter), defaultdict(Counter)
    for r in rows:
        for group, program in r["programs"].items():
            if group in GROUPS:
                played[r["genre"], group][program] += 1
                per_seed[r["genre"], group][r["seed"]] += 1
    table = []
    for (genre, group), counts in sorted(played.items()):
        programs, p = distribution(genre)[group]
        weights = list(per_seed[genre, group].values())
        chance = []
        for _ in range(draws):
            drawn = programs[rng.choice(len(p), len(weights), p=p)]
            chance.append(total_variation(_weighted(drawn, weights), programs, p))
        table.append((genre, group, sum(counts.values()), len(weights),
                      total_variation(counts, programs, p), float(np.mean(chance))))
    return table


def _weighted(drawn, weights):
    out = Counter()
    for q, w in zip(drawn.tolist(), weights):
        out[int(q)] += w
    return out


def clip_paths(clips):
    out = []
    for clip in clips:
        path = Path(clip)
        out += sorted(str(p) for p in path.iterdir() if p.suffix in VIDEO_SUFFIXES) \
            if path.is_dir() else [str(path)]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="*", default=None,
                        help="videos or folders of videos (default: all shared clips)")
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--end", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--before", action="store_true", help="the path before issue 15")
    parser.add_argument("--option", nargs="*", default=[], metavar="NAME=VALUE",
                        help="ScoreOptions to change, e.g. repetition=0")
    parser.add_argument("--no-audio", action="store_true",
                        help="skip rendering (no loudness, true peak or clipping figures)")
    parser.add_argument("--reference-songs", type=int, default=20, help="per genre; 0 = skip")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    options = {}
    for item in args.option:
        name, _, value = item.partition("=")
        options[name] = json.loads(value) if value[:1] in "-0123456789[{" else value

    scorer = Scorer.from_pretrained()
    clips = clip_paths(args.clips or sorted(str(p) for p in (SHARED / "videos").glob("*.mp4")))
    rows = []
    for clip in clips:
        rhythm = scorer.analyze(clip, start=args.start, end=args.end)
        for genre in scorer.genres:
            for seed in args.seeds:
                r = piece(scorer, rhythm, genre, seed, args.before, options, not args.no_audio)
                r.update(clip=Path(clip).name, genre=genre, seed=seed, tempo=rhythm.tempo_bpm,
                         duration_s=rhythm.duration_s, n_bars=rhythm.n_bars)
                rows.append(r)
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                  for k, v in r.items()}), flush=True)
    ref_quality, ref_form = reference(ROOT / "data/midi_genre", args.reference_songs) \
        if args.reference_songs else ([], [])
    fmt = lambda s: "-" if not s else f"{s[0]:8.4f} ({s[1]:.3f}, {s[2]:.3f})"
    what = "before issue 15" if args.before else ", ".join(f"{k}={v}" for k, v in options.items())
    print(f"\n{len(rows)} pieces ({what or 'default options'}), {len(clips)} clips; "
          f"{len(ref_quality)} held-out songs: mean (min, max)")
    print("\nissue 15: whole pieces, whole songs")
    generated, ref = summary(rows, QUALITY_KEYS), summary(ref_quality, QUALITY_KEYS)
    print(f"{'statistic':22s} {'vbgm':>28s} {'held-out songs':>28s}")
    for k in QUALITY_KEYS:
        print(f"{k:22s} {fmt(generated[k]):>28s} {fmt(ref.get(k)):>28s}")
    silent = sum(r["longest_silence_s"] > 1.5 for r in rows)
    print(f"pieces with a silence over 1.5 s: {silent} of {len(rows)}")

    print(f"\nissue 23: whole pieces, the songs' middle {WINDOW_BARS} bars")
    generated, ref = summary(rows, FORM_KEYS), summary(ref_form, FORM_KEYS)
    long = summary([r for r in rows if r["n_bars"] >= LONG_BARS], FORM_KEYS)
    print(f"{'statistic':22s} {'vbgm':>28s} {f'vbgm, {LONG_BARS}+ bars':>28s} "
          f"{'held-out songs':>28s} {'target':>12s}")
    for k in FORM_KEYS:
        print(f"{k:22s} {fmt(generated[k]):>28s} {fmt(long[k]):>28s} {fmt(ref.get(k)):>28s} "
              f"{TARGETS[k]:>12s}")
    by_genre = defaultdict(list)
    for r in ref_form:
        by_genre[r["genre"]].append(r)
    for genre, songs in sorted(by_genre.items()):
        s = summary(songs, ["drum_repetition", "pitched_repetition", "exact_copies", "h1", "h4"])
        print(f"  held-out {genre:12s} ({len(songs):2d} songs): " + ", ".join(
            f"{k} {v[0]:.2f}" for k, v in s.items() if v))
    short = ["drum_repetition", "pitched_repetition", "exact_copies", "grooving", "h1", "h4",
             "out_of_scale", "density", "strength", "time"]
    print(f"  {'per clip (bars)':28s} " + " ".join(f"{k[:8]:>8s}" for k in short))
    for clip in dict.fromkeys(r["clip"] for r in rows):
        mine = [r for r in rows if r["clip"] == clip]
        s = summary(mine, short)
        print(f"  {clip[:23]:23s} ({mine[0]['n_bars']:2d}) " + " ".join(
            f"{v[0]:8.3f}" if v else f"{'-':>8s}" for v in s.values()))
    non_tonic = [f"{r['clip']}/{r['genre']}/{r['seed']}" for r in rows
                 if not r["final_chord_tonic"]]
    print(f"pieces not ending on the tonic chord: {len(non_tonic)} of {len(rows)} "
          f"{' '.join(non_tonic)}")

    print("\norchestration: programs played vs the genre's distribution (total variation)")
    print(f"{'genre':14s} {'group':8s} {'pieces':>6s} {'seeds':>5s} {'TV':>6s} "
          f"{'TV by chance':>12s}")
    table = orchestration_table(rows)
    for genre, group, n, seeds, tv, chance in table:
        print(f"{genre:14s} {group:8s} {n:6d} {seeds:5d} {tv:6.3f} {chance:12.3f}")
    if table:
        print(f"{'mean':14s} {'':8s} {'':6s} {'':5s} {np.mean([t[4] for t in table]):6.3f} "
              f"{np.mean([t[5] for t in table]):12.3f}")
    # the draw itself, with enough seeds to see its distribution
    drawn = defaultdict(Counter)
    for genre in scorer.genres:
        for seed in range(SEEDS_FOR_THE_DRAW):
            for group, program in choose_programs(genre, seed).items():
                drawn[genre, group][program] += 1
    tv = [total_variation(c, *distribution(g)[group]) for (g, group), c in drawn.items()]
    print(f"choose_programs over {SEEDS_FOR_THE_DRAW} seeds: TV per genre and group mean "
          f"{np.mean(tv):.3f}, max {np.max(tv):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
