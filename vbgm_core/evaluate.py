"""`vbgm eval`: the paper's objective evaluation (METHOD.md §5) in one command.

For every video: generate with each control degree C and seed, plus two baselines in the same
run, and measure every piece with :func:`vbgm_core.metrics.evaluate` against the video:

* ``C=<c>``: the controlled sampler (Algorithm 1) at control degree c.
* ``unconditioned``: no video controls and no beat-timing encoding. Unlike the paper's
  unconditioned model, which ran free until EOS, our sampler always writes exactly the video's
  number of bars (the design: music never outlasts the video), so its length error is ~0 by
  construction.
* ``matched``: the training song (and whole-bar offset in it) with the best matching score
  (:func:`matching_score`, METHOD.md §5), cut to the video's bars and decoded at its tempo.
* ``reference``: MusDr metrics (H, GS, SI) of held-out songs of the dataset, whole songs at
  their own tempo (the paper's "training data" row).

Writes REPORT_DIR/report.md (tables laid out like the paper's Tables 1 and 4, its numbers
beside ours), report.json, plots/ (metrics vs C, one score plot per video), midi/ and rhythm/.
"""

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import Outputs
from .music.tokenizer import BAR, EOS, TICKS_PER_BAR, TYPE, bar_densities, onset_strengths

CONTROLS = (0.0, 0.3, 0.7, 1.0)
QUICK_CONTROLS = (0.0, 0.7, 1.0)
SEEDS = 3
REFERENCE_SONGS = 50
QUICK_REFERENCE_SONGS = 10
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"}
MS_EPS = 1e-6  # a perfect match scores 1 / MS_EPS instead of infinity

MUSDR = ("pitch_entropy", "groove_similarity", "structureness")
CONTROL_ERRORS = ("density_error", "strength_error", "time_error")
ALIGNMENT = ("onset_precision", "onset_recall", "onset_f1", "beat_align", "length_error_s")

# The CMT paper's numbers (METHOD.md §5): Table 1 (MusDr) and Table 4 (control error).
PAPER = {
    "table1": {
        "training data (LPD)": {"pitch_entropy": 4.452, "groove_similarity": 0.968,
                                "structureness": 0.488},
        "CMT with video control": {"pitch_entropy": 4.113, "groove_similarity": 0.599,
                                   "structureness": 0.200},
        "CMT without control": {"pitch_entropy": 3.617, "groove_similarity": 0.810,
                                "structureness": 0.241},
    },
    "table4": {"CMT": {"density_error": 0.107, "strength_error": 0.001, "time_error": 0.028}},
}
PAPER_ROW = {"reference": "training data (LPD)", "C=0.7": "CMT with video control",
             "unconditioned": "CMT without control"}


# ---------------------------------------------------------------- matching score


def video_targets(rhythm):
    """The video's per-bar densities ``[V]`` and per-tick strengths ``[16 V]`` (0 where it has no
    visual beat), as the sampler sees them (:meth:`vbgm_core.sample.Targets.from_rhythm`)."""
    from .sample import Targets

    targets = Targets.from_rhythm(rhythm)
    strengths = np.zeros(targets.n_bars * TICKS_PER_BAR)
    for tick, strength in targets.beats.items():
        strengths[tick] = strength
    return np.asarray(targets.densities, dtype=float), strengths


def song_targets(tokens):
    """A song's per-bar densities ``[n]`` and per-tick strengths ``[16 n]`` from its tokens."""
    densities = bar_densities(tokens).astype(float)
    strengths = np.zeros(len(densities) * TICKS_PER_BAR)
    onsets = onset_strengths(tokens)
    strengths[onsets[:, 0]] = onsets[:, 1]
    return densities, strengths


def matching_score(d_music, s_music, d_video, s_video):
    """``MS = 1 / (MSE(d_music, d_video) + MSE(s_music ⊙ 1(s_video), s_video))`` (METHOD.md §5).

    Args:
        d_music, d_video: per-bar densities, same length.
        s_music, s_video: per-tick strengths, same length; ``s_video`` is 0 off the visual beats,
            so only the music's strengths on the video's beats count.

    Returns:
        The score; a perfect match gives the largest, ``1 / MS_EPS``.
    """
    d_music, d_video = np.asarray(d_music, float), np.asarray(d_video, float)
    s_music, s_video = np.asarray(s_music, float), np.asarray(s_video, float)
    if d_music.shape != d_video.shape or s_music.shape != s_video.shape:
        raise InputError("matching score: music and video targets differ in length")
    err = np.mean((d_music - d_video) ** 2) + np.mean((s_music * (s_video > 0) - s_video) ** 2)
    return float(1.0 / (err + MS_EPS))


def window_scores(d_song, s_song, d_video, s_video):
    """Matching score of every whole-bar window of a song against the video.

    A song shorter than the video is padded with empty bars (one window, at offset 0).

    Returns:
        float array ``[n_offsets]``: entry o scores song bars ``o .. o + V - 1``.
    """
    n_bars = len(d_video)
    if len(d_song) < n_bars:
        d_song = np.pad(d_song, (0, n_bars - len(d_song)))
        s_song = np.pad(s_song, (0, n_bars * TICKS_PER_BAR - len(s_song)))
    windows = np.lib.stride_tricks.sliding_window_view(d_song, n_bars)      # [n_off, V]
    d_mse = ((windows - d_video) ** 2).mean(axis=1)
    beats = np.flatnonzero(s_video)
    # Off the video's beats both sides are 0 after the mask: only the beat ticks add error.
    ticks = TICKS_PER_BAR * np.arange(len(windows))[:, None] + beats[None, :]  # [n_off, k]
    s_mse = ((s_song[ticks] - s_video[beats]) ** 2).sum(axis=1) / len(s_video)
    return 1.0 / (d_mse + s_mse + MS_EPS)


@dataclass
class Match:
    """The best (song, offset) for a video."""

    song: int        # dataset row
    offset_bars: int
    score: float


def best_match(songs, d_video, s_video):
    """Maximise the matching score over songs and whole-bar offsets (first best on ties).

    Args:
        songs: ``{dataset row: (densities, strengths)}`` from :func:`song_targets`.
        d_video, s_video: from :func:`video_targets`.

    Returns:
        :class:`Match`.
    """
    best = Match(-1, 0, -math.inf)
    for row, (d_song, s_song) in songs.items():
        scores = window_scores(d_song, s_song, d_video, s_video)
        offset = int(np.argmax(scores))
        if scores[offset] > best.score:
            best = Match(row, offset, float(scores[offset]))
    return best


def song_window(tokens, offset_bars, n_bars):
    """Tokens of bars ``offset .. offset + n_bars - 1`` of a song (empty bars past its end),
    closed by EOS: a valid piece of exactly ``n_bars`` bars."""
    tokens = np.asarray(tokens)
    starts = np.flatnonzero(tokens[:, TYPE] == BAR)
    end_of_song = int(np.flatnonzero(tokens[:, TYPE] == EOS)[0])
    bounds = list(starts) + [end_of_song]
    first, last = offset_bars, min(offset_bars + n_bars, len(starts))
    body = tokens[bounds[first]:bounds[last]]
    empty = np.zeros((n_bars - (last - first), tokens.shape[1]), dtype=tokens.dtype)
    empty[:, TYPE], empty[:, 2] = BAR, 1  # density column: 0 onsets + 1
    eos = np.zeros((1, tokens.shape[1]), dtype=tokens.dtype)
    eos[0, TYPE] = EOS
    return np.concatenate([body, empty, eos])


# ---------------------------------------------------------------- runs


def find_videos(inputs):
    """Video files from a list of files and folders (a folder: its video files, sorted)."""
    videos = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise InputError(f"{item}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
            videos += found
        elif item.is_file():
            videos.append(item)
        else:
            raise InputError(f"{item}: no such video file or folder")
    return videos


def _names(videos):
    """Unique file-system-safe names for the videos (stem, then stem_2, ...)."""
    names, seen = [], {}
    for v in videos:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in v.stem)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def _clean(value):
    return None if value is None or value != value or math.isinf(value) else round(float(value), 6)


def reference_metrics(dataset, n_songs):
    """MusDr metrics of up to ``n_songs`` held-out songs (evenly spaced over the test split;
    the valid split, then train, when a small dataset has none), whole songs at their tempo.

    Returns:
        (split used, list of per-song dicts with ``song``, ``path`` and the MusDr metrics).
    """
    from . import metrics
    from .music.tokenizer import CPTokenizer

    split, rows = next(((s, dataset.split_ids(s)) for s in ("test", "valid", "train")
                        if dataset.split_ids(s)))
    if len(rows) > n_songs:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, n_songs).round().astype(int)]
    out = []
    for row in rows:
        info = dataset.index[row]
        midi = CPTokenizer().decode(dataset.song(row), info["tempo_bpm"])
        out.append({"song": row, "path": info["path"],
                    "pitch_entropy": _clean(metrics.pitch_class_entropy(midi)),
                    "groove_similarity": _clean(metrics.grooving_similarity(midi)),
                    "structureness": _clean(metrics.structureness(midi))})
    return split, out


def _summary(runs, metric_names):
    """Mean, standard deviation and count of each metric over runs (None values left out)."""
    out = {"n": len(runs), "mean": {}, "std": {}}
    for name in metric_names:
        values = [r[name] for r in runs if r.get(name) is not None]
        out["mean"][name] = _clean(np.mean(values)) if values else None
        out["std"][name] = _clean(np.std(values)) if values else None
    return out


def run_eval(videos, output, *, model=None, data=None, genre=None, instruments=None, seeds=None,
             controls=None, quick=False, reference_songs=None, overwrite=False, progress=None):
    """Evaluate the model on videos; write the report folder.

    Args:
        videos: video files and/or folders of videos.
        output: report folder to create (refused if it exists, unless ``overwrite``).
        model: model path (default: the bundled model).
        data: dataset directory (``vbgm prepare``) for the matched baseline and the reference
            row; without it both are skipped (said so in the report).
        genre, instruments: generation choices (default: pop or the model's first; all five).
        seeds: seeds per control degree (default 3; 1 with ``quick``).
        controls: control degrees (default 0, 0.3, 0.7, 1; 0, 0.7, 1 with ``quick``).
        quick: a smoke check in minutes (fewer seeds, controls and reference songs).
        reference_songs: held-out songs in the reference row (default 50; 10 with ``quick``).
        overwrite: replace an existing report folder.
        progress: optional callable(stage, fraction), stages ``analyze``, ``match`` (reading
            the training songs), ``generate`` (every piece, measured), ``reference``.

    Returns:
        The report (the dict written to report.json).

    Raises:
        InputError: no videos, a bad video, control degree or option; an existing output.
        ModelLoadError: the model cannot be loaded.
    """
    from .options import ScoreOptions
    from .scorer import Scorer, clip_midi, score_report
    from .data import TokenDataset
    from .music.tokenizer import CPTokenizer

    report_progress = progress or (lambda stage, fraction: None)
    controls = tuple(float(c) for c in (controls or (QUICK_CONTROLS if quick else CONTROLS)))
    bad = [c for c in controls if not 0.0 <= c <= 1.0]
    if bad:
        raise InputError(f"control degree(s) {bad} outside [0, 1]")
    seeds = seeds if seeds is not None else (1 if quick else SEEDS)
    if seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {seeds}")
    if reference_songs is None:
        reference_songs = QUICK_REFERENCE_SONGS if quick else REFERENCE_SONGS
    if reference_songs < 1:
        raise InputError(f"--reference-songs must be at least 1, got {reference_songs}")
    output = Path(output)
    given, videos = videos, find_videos(videos)
    outputs = Outputs(inputs=(*given, *videos, model, data), overwrite=overwrite)
    outputs.add_folder(output, "report folder")
    dataset = TokenDataset(data) if data is not None else None
    scorer = Scorer.from_pretrained(model)
    base = ScoreOptions(genre=genre, instruments=instruments)
    genre, _, instruments = scorer.resolve(base)
    tokenizer = CPTokenizer()
    t_start = time.perf_counter()

    rhythms = []
    for i, video in enumerate(videos):
        rhythms.append(scorer.analyze(
            video, progress=lambda f, i=i: report_progress("analyze", (i + f) / len(videos))))
    report_progress("analyze", 1.0)

    train_songs = {}
    if dataset is not None:
        ids = dataset.split_ids("train")
        for k, row in enumerate(ids):
            train_songs[row] = song_targets(dataset.song(row))
            if k % 100 == 0:
                report_progress("match", k / len(ids))
        report_progress("match", 1.0)

    names = _names(videos)
    runs, pieces = [], {}
    n_jobs = len(videos) * (len(controls) * seeds + seeds + (dataset is not None))
    done = 0

    def measure(name, rhythm, condition, control, seed, tokens, midi, **facts):
        nonlocal done
        r = score_report(midi, rhythm, tokens, structure=True)
        runs.append({"video": name, "condition": condition, "control": control, "seed": seed,
                     "n_tokens": r["n_tokens"], **facts, **r["metrics"]})
        pieces[name, condition, seed] = midi
        done += 1
        report_progress("generate", done / n_jobs)

    for name, rhythm in zip(names, rhythms):
        for control in controls:
            for seed in range(seeds):
                t0 = time.perf_counter()
                tokens, midi = scorer.generate(rhythm, base.replace(control=control, seed=seed))
                measure(name, rhythm, f"C={control:g}", control, seed, tokens, midi,
                        generate_s=round(time.perf_counter() - t0, 3))
        for seed in range(seeds):
            t0 = time.perf_counter()
            tokens, midi = scorer.generate(rhythm, base.replace(control=0.0, seed=seed),
                                           timing=False)
            measure(name, rhythm, "unconditioned", None, seed, tokens, midi,
                    generate_s=round(time.perf_counter() - t0, 3))
        if dataset is not None:
            d_video, s_video = video_targets(rhythm)
            match = best_match(train_songs, d_video, s_video)
            tokens = song_window(dataset.song(match.song), match.offset_bars, rhythm.n_bars)
            midi = clip_midi(tokenizer.decode(tokens, rhythm.tempo_bpm), rhythm.duration_s,
                             rhythm.tempo_bpm)
            measure(name, rhythm, "matched", None, None, tokens, midi,
                    match_song=dataset.index[match.song]["path"],
                    match_offset_bars=match.offset_bars,
                    matching_score=_clean(match.score))

    reference, reference_split = None, None
    if dataset is not None:
        report_progress("reference", 0.0)
        reference_split, reference = reference_metrics(dataset, reference_songs)
        report_progress("reference", 1.0)

    conditions = [f"C={c:g}" for c in controls] + ["unconditioned"]
    conditions += ["matched"] if dataset is not None else []
    all_metrics = MUSDR + CONTROL_ERRORS + ALIGNMENT
    summary = {c: _summary([r for r in runs if r["condition"] == c], all_metrics)
               for c in conditions}
    if reference is not None:
        summary["reference"] = _summary(reference, MUSDR)
    report = {
        "settings": {
            "model": str(model) if model else "bundled", "genre": genre,
            "instruments": list(instruments), "controls": list(controls), "seeds": seeds,
            "quick": quick, "data": str(data) if data is not None else None,
            "reference_songs": reference_songs if dataset is not None else 0,
            "reference_split": reference_split,
            "matched_candidates": len(train_songs),
        },
        "videos": [{"name": n, "path": str(v), "duration_s": r.duration_s,
                    "tempo_bpm": r.tempo_bpm, "n_bars": r.n_bars,
                    "visual_beats": len(r.visual_beats), "cuts": len(r.cuts)}
                   for n, v, r in zip(names, videos, rhythms)],
        "summary": summary,
        "runs": runs,
        "reference": reference,
        "paper": PAPER,
        "notes": _notes(dataset, reference_split),
        "seconds": None,
    }
    with outputs:
        tmp = outputs.temp(output)
        _write_outputs(tmp, report, names, rhythms, pieces, controls, seeds)
        report["seconds"] = round(time.perf_counter() - t_start, 1)
        (tmp / "report.json").write_text(json.dumps(report, indent=1))
        (tmp / "report.md").write_text(report_markdown(report))
    return report


def _notes(dataset, reference_split):
    notes = [
        "The unconditioned baseline (no video controls, no beat-timing encoding) generates "
        "exactly the video's number of bars, as every vbgm piece does; the paper's unconditioned "
        "model ran free until EOS, so its length and time error are not comparable.",
        "SI (structureness) is computed from a symbolic chroma of the MIDI (MusDr runs it on "
        "audio), so it is not comparable in kind with the paper's SI; H uses 4-bar windows and "
        "GS all bar pairs with drums on the 16th grid (settings in vbgm_core/metrics.py); the "
        "paper does not state its settings. SI looks for repeated 3-8 s segments, so it is near "
        "0 for pieces under ~20 s; use clips of a minute or more for Table 1.",
        "The paper's objective numbers are placed beside the analogous rows: its "
        "'CMT with video control' beside C=0.7 (its chosen C; the paper does not state the C "
        "of Table 1), its Table 4 control error beside C=0.7 likewise.",
    ]
    if dataset is None:
        notes.append("No --data given: the matched baseline and the reference row were skipped.")
    elif reference_split != "test":
        notes.append(f"The dataset has no test-split songs: the reference row uses the "
                     f"{reference_split} split, which is not held out.")
    return notes


def _write_outputs(folder, report, names, rhythms, pieces, controls, seeds):
    """MIDI of every piece, rhythm JSON and a score plot per video, the metric-vs-C plot."""
    from .plot import plot_score

    (folder / "plots").mkdir()
    (folder / "rhythm").mkdir()
    shown = min(controls, key=lambda c: abs(c - 0.7))  # the score plot shows C closest to 0.7
    for name, rhythm in zip(names, rhythms):
        rhythm.to_json(folder / "rhythm" / f"{name}.json")
        (folder / "midi" / name).mkdir(parents=True)
        for (video, condition, seed), midi in pieces.items():
            if video == name:
                suffix = f"_seed{seed}" if seed is not None else ""
                midi.dump(str(folder / "midi" / name / f"{condition}{suffix}.mid"))
        plot_score(rhythm, pieces[name, f"C={shown:g}", 0], folder / "plots" / f"{name}.png")
    plot_metrics_vs_control(report, folder / "plots" / "metrics_vs_control.png")


def plot_metrics_vs_control(report, path):
    """Each metric's mean (± std over videos and seeds) against C; the baselines and the
    reference as horizontal lines, the paper's numbers as crosses at C=0.7."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    summary, controls = report["summary"], report["settings"]["controls"]
    shown = MUSDR + CONTROL_ERRORS + ("onset_f1", "beat_align")
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))  # 8 metrics + the legend
    lines = {"unconditioned": ("tab:gray", "--"), "matched": ("tab:green", ":"),
             "reference": ("tab:purple", "-.")}
    for ax, metric in zip(axes.flat, shown):
        mean = [summary[f"C={c:g}"]["mean"][metric] for c in controls]
        std = [summary[f"C={c:g}"]["std"][metric] for c in controls]
        ok = [i for i, m in enumerate(mean) if m is not None]
        ax.errorbar([controls[i] for i in ok], [mean[i] for i in ok], [std[i] for i in ok],
                    marker="o", capsize=3, label="CMT (ours)")
        for row, (colour, style) in lines.items():
            value = summary.get(row, {}).get("mean", {}).get(metric)
            if value is not None:
                ax.axhline(value, color=colour, ls=style, label=row)
        paper = {**PAPER["table1"]["CMT with video control"], **PAPER["table4"]["CMT"]}
        if metric in paper:
            ax.plot([0.7], [paper[metric]], "rx", ms=9, label="paper (CMT)")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("control degree C")
    axes.flat[-1].axis("off")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes.flat[-1].legend(list(handles.values()), list(handles), loc="center")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- report.md


def _cell(summary, row, metric, digits=3):
    s = summary.get(row)
    if s is None or s["mean"].get(metric) is None:
        return "–"
    mean, std = s["mean"][metric], s["std"][metric]
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if s["n"] > 1 else f"{mean:.{digits}f}"


def _paper_cell(table, row, metric):
    """The paper's number beside our analogous row (PAPER_ROW; Table 4 beside C=0.7)."""
    if table == "table1":
        values = PAPER["table1"].get(PAPER_ROW.get(row), {})
    else:
        values = PAPER["table4"]["CMT"] if row == "C=0.7" else {}
    return f"{values[metric]:.3f}" if metric in values else "–"


def _label(row, settings):
    if row == "reference":
        return f"held-out songs ({settings['reference_split']} split)"
    return row


def report_markdown(report):
    """report.md: settings, the paper's Tables 1 and 4 with our numbers, rhythm alignment, the
    videos and their matched songs, notes."""
    settings, summary = report["settings"], report["summary"]
    rows = [r for r in ("reference",) if r in summary] + [r for r in summary if r != "reference"]
    out = ["# vbgm eval report", "",
           f"Model: `{settings['model']}`; genre {settings['genre']}; instruments "
           f"{', '.join(settings['instruments'])}; C ∈ {{{', '.join(f'{c:g}' for c in settings['controls'])}}}; "
           f"{settings['seeds']} seed(s); {len(report['videos'])} video(s), "
           f"{sum(v['duration_s'] for v in report['videos']):.1f} s in all; data "
           f"`{settings['data']}`" + (" (quick)" if settings["quick"] else "") + ".",
           "Values are mean ± standard deviation over videos × seeds (the reference row: over "
           "songs). `–`: not measured, or no paper counterpart.", "",
           "## Table 1: objective metrics (MusDr)", "",
           "| | H ↑ | GS ↑ | SI ↑ | n | paper H | paper GS | paper SI |",
           "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ours = [_cell(summary, row, m) for m in MUSDR]
        paper = [_paper_cell("table1", row, m) for m in MUSDR]
        out.append(f"| {_label(row, settings)} | {' | '.join(ours)} | {summary[row]['n']} | "
                   f"{' | '.join(paper)} |")
    out += ["", "Paper rows: training data (LPD) ↔ held-out songs; CMT with video control ↔ "
            "C=0.7; CMT without control ↔ unconditioned.", "",
            "## Table 4: control error (normalised L2, lower is better)", "",
            "| | density | strength | time | paper density | paper strength | paper time |",
            "|---|---|---|---|---|---|---|"]
    for row in (r for r in rows if r != "reference"):
        ours = [_cell(summary, row, m) for m in CONTROL_ERRORS]
        paper = [_paper_cell("table4", row, m) for m in CONTROL_ERRORS]
        out.append(f"| {row} | {' | '.join(ours)} | {' | '.join(paper)} |")
    out += ["", "## Rhythm alignment with the video (no paper counterpart)", "",
            "| | onset P | onset R | onset F1 | BeatAlign | length error (s) |",
            "|---|---|---|---|---|---|"]
    for row in (r for r in rows if r != "reference"):
        out.append(f"| {row} | {' | '.join(_cell(summary, row, m) for m in ALIGNMENT)} |")
    out += ["", "## Videos", "",
            "| video | duration (s) | tempo (BPM) | bars | visual beats | cuts | matched song "
            "(bar offset, MS) |", "|---|---|---|---|---|---|---|"]
    matched = {r["video"]: r for r in report["runs"] if r["condition"] == "matched"}
    for v in report["videos"]:
        m = matched.get(v["name"])
        match = (f"{m['match_song']} ({m['match_offset_bars']}, {m['matching_score']:.3g})"
                 if m else "–")
        out.append(f"| {v['name']} | {v['duration_s']:.2f} | {v['tempo_bpm']:g} | {v['n_bars']} "
                   f"| {v['visual_beats']} | {v['cuts']} | {match} |")
    out += ["", "Plots: `plots/metrics_vs_control.png` (metrics against C with the baselines), "
            "`plots/<video>.png` (the video's rhythm above the music at the C closest to 0.7). "
            "Every piece is in `midi/<video>/`, every analysed rhythm in `rhythm/`; "
            "`report.json` has each run.", "", "## Notes", ""]
    out += [f"- {n}" for n in report["notes"]]
    out += ["", f"Run time: {report['seconds']} s." if report["seconds"] is not None else ""]
    return "\n".join(out) + "\n"
