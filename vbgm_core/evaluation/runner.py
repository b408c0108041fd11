"""`vbgm eval`'s run: videos → analysed rhythms → every piece (each control degree and seed,
the unconditioned and matched baselines) → measured runs → the report folder."""

import time
from pathlib import Path

from ..errors import InputError
from ..files import Outputs
from ..options import ScoreOptions
from ..scorer import Scorer, score_report
from ..training.data import TokenDataset
from .baselines import candidate_songs, matched_piece, reference_metrics
from .report import make_report, write_pieces, write_report

CONTROLS = (0.0, 0.3, 0.7, 1.0)
QUICK_CONTROLS = (0.0, 0.7, 1.0)
SEEDS = 3
REFERENCE_SONGS = 50
QUICK_REFERENCE_SONGS = 10
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"}


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


def run_eval(videos, output, *, model=None, data=None, options=None, seeds=None,
             controls=None, quick=False, reference_songs=None, overwrite=False, progress=None):
    """Evaluate the model on videos; write the report folder.

    Args:
        videos: video files and/or folders of videos.
        output: report folder to create (refused if it exists, unless ``overwrite``).
        model: model path (default: the bundled model).
        data: dataset directory (``vbgm prepare``) for the matched baseline and the reference
            row; without it both are skipped (said so in the report).
        options: the music's ``ScoreOptions`` (or a dict of them); its control degree and
            seed are swept (``controls``, ``seeds``).
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
    report_progress = progress or (lambda stage, fraction: None)
    controls, seeds, reference_songs = _checked_plan(controls, seeds, reference_songs, quick)
    output = Path(output)
    given, videos = videos, find_videos(videos)
    outputs = Outputs(inputs=(*given, *videos, model, data), overwrite=overwrite)
    outputs.add_folder(output, "report folder")
    dataset = TokenDataset(data) if data is not None else None
    scorer = Scorer.from_pretrained(model)
    base = ScoreOptions.coerce(options)
    genre, _, instruments = scorer.resolve(base)
    t_start = time.perf_counter()

    rhythms = _analyze(scorer, videos, report_progress)
    candidates = {}
    if dataset is not None:
        candidates = candidate_songs(dataset, lambda f: report_progress("match", f))
    names = _names(videos)
    pieces_per_video = len(controls) * seeds + seeds + (dataset is not None)
    measured = _Measured(len(videos) * pieces_per_video, report_progress)
    for name, rhythm in zip(names, rhythms):
        for condition, control, seed, options, timing in _generations(base, controls, seeds):
            t0 = time.perf_counter()
            tokens, midi = scorer.generate(rhythm, options, timing=timing)
            measured.add(name, rhythm, condition, control, seed, tokens, midi,
                         generate_s=round(time.perf_counter() - t0, 3))
        if dataset is not None:
            tokens, midi, facts = matched_piece(dataset, candidates, rhythm)
            measured.add(name, rhythm, "matched", None, None, tokens, midi, **facts)

    reference, reference_split = None, None
    if dataset is not None:
        report_progress("reference", 0.0)
        reference_split, reference = reference_metrics(dataset, reference_songs)
        report_progress("reference", 1.0)

    settings = {
        "model": str(model) if model else "bundled", "genre": genre,
        "instruments": list(instruments), "controls": list(controls), "seeds": seeds,
        "quick": quick, "data": str(data) if data is not None else None,
        "reference_songs": reference_songs if dataset is not None else 0,
        "reference_split": reference_split,
        "matched_candidates": len(candidates),
    }
    report = make_report(settings, [_video_facts(n, v, r) for n, v, r in
                                    zip(names, videos, rhythms)], measured.runs, reference)
    with outputs:
        tmp = outputs.temp(output)
        write_pieces(tmp, report, names, rhythms, measured.pieces)
        report["seconds"] = round(time.perf_counter() - t_start, 1)
        write_report(tmp, report)
    return report


def _checked_plan(controls, seeds, reference_songs, quick):
    """The control degrees, seeds and reference songs to run (defaults by ``quick``), checked
    before any slow work."""
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
    return controls, seeds, reference_songs


def _analyze(scorer, videos, report_progress):
    """Every video's ``VideoRhythm``, with one ``analyze`` progress over all of them."""
    rhythms = []
    for i, video in enumerate(videos):
        rhythms.append(scorer.analyze(
            video, progress=lambda f, i=i: report_progress("analyze", (i + f) / len(videos))))
    report_progress("analyze", 1.0)
    return rhythms


def _generations(base, controls, seeds):
    """The model's pieces for one video: (condition, control, seed, options, timing) for each
    control degree and seed, then the unconditioned baseline (C = 0, no beat-timing) per seed."""
    for control in controls:
        for seed in range(seeds):
            yield f"C={control:g}", control, seed, base.replace(control=control, seed=seed), True
    for seed in range(seeds):
        yield "unconditioned", None, seed, base.replace(control=0.0, seed=seed), False


class _Measured:
    """The pieces so far, each measured against its video as it comes (``generate`` progress
    counts them)."""

    def __init__(self, n_pieces, report_progress):
        self.runs = []     # report.json's runs, in generation order
        self.pieces = {}   # (video name, condition, seed) → MIDI
        self._n_pieces, self._report_progress = n_pieces, report_progress

    def add(self, name, rhythm, condition, control, seed, tokens, midi, **facts):
        r = score_report(midi, rhythm, tokens, structure=True)
        self.runs.append({"video": name, "condition": condition, "control": control,
                          "seed": seed, "n_tokens": r["n_tokens"], **facts, **r["metrics"]})
        self.pieces[name, condition, seed] = midi
        self._report_progress("generate", len(self.runs) / self._n_pieces)


def _names(videos):
    """Unique file-system-safe names for the videos (stem, then stem_2, ...)."""
    names, seen = [], {}
    for v in videos:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in v.stem)
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def _video_facts(name, path, rhythm):
    """A video's row in the report."""
    return {"name": name, "path": str(path), "duration_s": rhythm.duration_s,
            "tempo_bpm": rhythm.tempo_bpm, "n_bars": rhythm.n_bars,
            "visual_beats": len(rhythm.visual_beats), "cuts": len(rhythm.cuts)}
