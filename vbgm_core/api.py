"""The one call the CLI and the editor plugins use: score a video.

    result = score_video("clip.mp4", out_wav="clip.wav", genre="pop", seed=1)

Stages: ``analyze`` (video rhythm), ``generate`` (controlled sampling), ``render`` (MIDI,
FluidSynth audio, optional mux). ``progress(stage, fraction)`` is called as each advances.
"""

import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ModelLoadError
from .files import atomic_path, check_output
from .music.instruments import GROUPS
from .music.tokenizer import CPTokenizer

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "model.safetensors"
SAMPLE_RATE = 44100
STAGES = ("analyze", "generate", "render")


@dataclass
class ScoreResult:
    """What ``score_video`` made. Paths are None for outputs that were not asked for."""

    midi: object            # miditoolkit.MidiFile
    audio: np.ndarray | None  # float32 [n, 2]; None when not rendered
    sample_rate: int
    report: dict
    rhythm: object          # VideoRhythm
    tokens: np.ndarray      # (N, 7) compound words
    wav_path: Path | None = None
    midi_path: Path | None = None
    video_path: Path | None = None


@functools.lru_cache(maxsize=4)
def _load(path):
    from .model.checkpoint import load_model

    model, extra = load_model(path)
    if not extra.get("genres"):
        raise ModelLoadError(f"{path}: the model names no genres")
    return model, extra


def load_scoring_model(model=None):
    """(CMT, extra) for a model path, or the bundled default; loaded once per process."""
    path = Path(model) if model else DEFAULT_MODEL
    if not path.is_file():
        if model:
            raise ModelLoadError(f"{path}: model file not found")
        raise ModelLoadError(f"{path}: the bundled model is missing (reinstall vbgm, or pass "
                             "--model PATH to a model made by `vbgm train`)")
    return _load(str(path.resolve()))


def model_genres(model=None):
    """Genre names the model was trained on."""
    return list(load_scoring_model(model)[1]["genres"])


def check_choices(genre, instruments, genres):
    """Validate genre and instrument names; returns (genre index, instrument tuple)."""
    if genre not in genres:
        raise InputError(f"unknown genre {genre!r}; the model knows: {', '.join(genres)}")
    instruments = tuple(instruments) if instruments else GROUPS
    bad = [i for i in instruments if i not in GROUPS]
    if bad:
        raise InputError(f"unknown instrument(s) {', '.join(bad)}; choose from {', '.join(GROUPS)}")
    return genres.index(genre), tuple(i for i in GROUPS if i in instruments)


def default_genre(genres):
    """The genre used when none is asked for: pop where the model has it."""
    return "pop" if "pop" in genres else genres[0]


def generate_for_rhythm(rhythm, model, genre_id, instruments, control, seed, progress=None,
                        cancel=None, sampling=None, timing=True):
    """Tokens and MIDI (cut at the video's end) for an analysed video: the generate stage.

    ``timing=False`` withholds the beat-timing encoding (with ``control=0``: the evaluation's
    unconditioned baseline).
    """
    import torch

    from .model.cmt import set_cpu_generation_threads
    from .sample import ControlledSampler, Targets

    threads = torch.get_num_threads()
    set_cpu_generation_threads()
    try:
        sampler = ControlledSampler(model, genre_id, instruments, control, seed, sampling,
                                    timing)
        tokens = sampler.generate(Targets.from_rhythm(rhythm), progress, cancel)
    finally:
        torch.set_num_threads(threads)
    midi = CPTokenizer().decode(tokens, rhythm.tempo_bpm)
    return tokens, clip_midi(midi, rhythm.duration_s, rhythm.tempo_bpm)


def clip_midi(midi, duration_s, tempo_bpm):
    """Cut the music at the video's end: the last bar may run past it (bars tile by ceil)."""
    limit = int(duration_s * tempo_bpm / 60 * midi.ticks_per_beat)  # floor: never past the end
    for inst in midi.instruments:
        inst.notes = [n for n in inst.notes if n.start < limit]
        for n in inst.notes:
            n.end = min(n.end, limit)
    midi.max_tick = min(midi.max_tick, limit)
    return midi


def score_report(midi, rhythm, tokens, structure=False, **facts):
    """The report of a scored video: its facts, control error, rhythm alignment and the cheap
    MusDr metrics (``structure=True`` adds the structureness indicator, slow on long pieces)."""
    from . import metrics

    beats = [(b.tick, b.strength) for b in rhythm.visual_beats]
    # A last bar cut short by the video's end is left out of the density error: most of its
    # notes were never played. (Clips shorter than one bar keep their one bar.)
    full_bars = max(1, int(rhythm.duration_s * rhythm.tempo_bpm / 240 + 1e-6))
    densities = [b.density for b in rhythm.bars[:full_bars]]
    m = metrics.evaluate(midi, densities, beats, rhythm.cuts, rhythm.duration_s, rhythm.tempo_bpm,
                         structure)
    clean = {k: (None if v != v else round(float(v), 6)) for k, v in m.items()}  # nan → null
    return {
        "duration_s": rhythm.duration_s, "tempo_bpm": rhythm.tempo_bpm, "n_bars": rhythm.n_bars,
        **facts, "n_tokens": int(len(tokens)),
        "control_error": {k: clean[f"{k}_error"] for k in ("density", "strength", "time")},
        "metrics": clean,
    }


def score_video(video, out_wav=None, out_midi=None, out_video=None, *, genre=None,
                instruments=None, control=0.7, tempo=None, seed=0, start=None, end=None,
                model=None, soundfont=None, sampling=None, mix="replace", original_gain=0.3,
                overwrite=False,
                rhythm=None, render=True, progress=None, cancel=None):
    """Compose and render a soundtrack for a video file (or its [start, end) range).

    Args:
        video: the video file (only read); may be None when ``rhythm`` is given (frames
            analysed by the caller, e.g. an edited MoviePy clip) and ``out_video`` is not.
        out_wav, out_midi, out_video: outputs to write (atomically); refused if they exist
            unless ``overwrite``. ``out_video`` is a copy of the video with the music.
        genre: a genre of the model (default "pop" where the model has it).
        instruments: group names (default all five).
        control: control degree C in [0, 1].
        tempo: BPM, or None to derive it from the video.
        seed: same seed and inputs → the same music.
        start, end: range of the video to score, seconds.
        model: model path (default: the bundled model).
        soundfont: SoundFont path (default: found on the system).
        sampling: a ``sample.Sampling`` (per-attribute temperature and top-p), or None for
            the defaults.
        mix: ``"replace"`` the video's audio, or ``"mix"`` the music under it.
        original_gain: level of the original audio with ``mix="mix"``.
        rhythm: an already analysed VideoRhythm (skips the analyze stage).
        render: synthesize audio; False makes MIDI only (no synthesizer needed), and then
            ``out_wav`` / ``out_video`` must be None.
        progress: callable(stage, fraction).
        cancel: callable() → True to stop; raises Cancelled.

    Returns:
        ScoreResult.
    """
    from .mux import mux
    from .render import render_audio, write_wav
    from .video.rhythm import analyze_video

    if video is None and (rhythm is None or out_video is not None):
        raise InputError("score_video needs a video file (or a rhythm, without out_video)")
    video = Path(video) if video is not None else None
    for out in (out_wav, out_midi, out_video):
        if out is not None:
            check_output(out, overwrite)
    if not render and (out_wav is not None or out_video is not None):
        raise InputError("a WAV or video output needs rendering (render=True)")
    if mix not in ("replace", "mix"):
        raise InputError(f"mix must be 'replace' or 'mix', not {mix!r}")
    if not 0.0 <= float(control) <= 1.0:
        raise InputError(f"control degree {control} is outside [0, 1]")
    net, extra = load_scoring_model(model)
    genres = list(extra["genres"])
    genre = genre or default_genre(genres)
    genre_id, instruments = check_choices(genre, instruments, genres)
    report = progress or (lambda stage, fraction: None)
    timings = {}

    t0 = time.perf_counter()
    if rhythm is None:
        if not video.is_file():
            raise InputError(f"{video}: no such video file")
        rhythm = analyze_video(video, tempo=tempo, start=start, end=end,
                               progress=lambda f: report("analyze", f))
    timings["analyze_s"] = time.perf_counter() - t0
    report("analyze", 1.0)

    t0 = time.perf_counter()
    tokens, midi = generate_for_rhythm(rhythm, net, genre_id, instruments, control, seed,
                                       progress=lambda f: report("generate", f), cancel=cancel,
                                       sampling=sampling)
    timings["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = ScoreResult(midi, None, SAMPLE_RATE, {}, rhythm, tokens)
    if out_midi is not None:
        with atomic_path(out_midi) as tmp:
            midi.dump(str(tmp))
        result.midi_path = Path(out_midi)
    if render:
        result.audio = render_audio(midi, SAMPLE_RATE, soundfont=soundfont,
                                    duration_s=rhythm.duration_s)
        report("render", 0.5)
    if out_wav is not None:
        result.wav_path = write_wav(result.audio, SAMPLE_RATE, out_wav, overwrite=overwrite)
    if out_video is not None:
        with tempfile.TemporaryDirectory() as tmp:
            wav = result.wav_path or write_wav(result.audio, SAMPLE_RATE, Path(tmp) / "music.wav")
            result.video_path = mux(video, wav, out_video, mode=mix, original_gain=original_gain,
                                    start_s=rhythm.start_s,
                                    end_s=rhythm.start_s + rhythm.duration_s, overwrite=overwrite)
    timings["render_s"] = time.perf_counter() - t0
    report("render", 1.0)
    timings["tokens_per_s"] = len(tokens) / max(timings["generate_s"], 1e-9)
    result.report = score_report(
        midi, rhythm, tokens, video=str(video) if video else None, start_s=rhythm.start_s, genre=genre,
        instruments=list(instruments), control=control, seed=seed,
        model=str(Path(model) if model else DEFAULT_MODEL),
        timings={k: round(v, 3) for k, v in timings.items()})
    return result
