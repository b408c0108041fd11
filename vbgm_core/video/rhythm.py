"""``VideoRhythm``: everything the generator needs from a video, and the analysis that makes it.

``analyze_video`` (a file) and ``analyze_frames`` (any ``(time_s, RGB frame)`` iterable, e.g. a
MoviePy clip's frames) share one implementation, ``_analyze``. See docs/VIDEO.md.
"""

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, finite_number
from ..files import atomic_path
from . import beats as beats_mod
from . import frames as frames_mod
from .cuts import colour_histogram, detect_cuts, frame_change
from .flow import FlowMeter
from .mapping import bar_densities, beat_strengths, music_stats
from .tempo import TEMPO_RANGE, estimate_tempo, fit_to_duration

FORMAT_VERSION = 1
# A user tempo outside this range is refused (the music grid would be absurd).
USER_TEMPO_RANGE = (30.0, 300.0)
TICKS_PER_BEAT, BEATS_PER_BAR = 4, 4


class RangeWarning(UserWarning):
    """A requested range that the video does not hold whole: it was cut to what the video
    has (the result's ``start_s`` and ``duration_s`` say what was analysed)."""


def _seconds(value, what, path):
    """A range bound as a finite float; else an InputError naming it and the file."""
    return finite_number(value, f"{path}: {what}", "number of seconds")


@dataclass
class Bar:
    """One bar of the music grid: ``start_s``, mean motion ``speed`` (short sides/s), ``density``."""

    start_s: float
    speed: float
    density: int


@dataclass
class VisualBeat:
    """A visual beat: time, absolute 16th-note ``tick`` from the start, saliency (0..1), strength.

    ``cut`` marks a hard shot boundary used as a maximally salient beat.
    """

    time_s: float
    tick: int
    saliency: float
    strength: int
    cut: bool = False


@dataclass
class VideoRhythm:
    """The video's rhythm on the music grid (JSON format in docs/DESIGN.md "Video rhythm").

    Attributes:
        duration_s: analysed duration in seconds (the trimmed range, if any).
        fps: measured frame rate (median time-stamp step), not the metadata's.
        tempo_bpm: tempo of the music grid.
        n_bars: ``ceil(tempo * duration / 60 / 4)``; bar k starts at ``k * 240 / tempo``.
        bars: one ``Bar`` per bar.
        visual_beats: ``VisualBeat`` list, by time.
        cuts: times (s) of hard cuts.
        motion: per analysed frame ``(t, F)``, F = mean flow magnitude (short sides/s).
        tempo_source: ``"auto"`` or ``"user"``.
        source: the analysed file, if any; ``start_s``: its offset in that file.
        settings: analysis settings and the music statistics used (``"music_stats"``).
    """

    duration_s: float
    fps: float
    tempo_bpm: float
    n_bars: int
    bars: list
    visual_beats: list
    cuts: list
    motion: list = field(default_factory=list)
    tempo_source: str = "auto"
    source: str | None = None
    start_s: float = 0.0
    settings: dict = field(default_factory=dict)

    @property
    def bar_seconds(self):
        """Length of one bar in seconds."""
        return 60.0 * BEATS_PER_BAR / self.tempo_bpm

    def to_dict(self):
        """Plain JSON-ready dict (``motion`` as ``{"t", "F"}`` records)."""
        d = asdict(self)
        d["motion"] = [{"t": t, "F": f} for t, f in self.motion]
        return {"format_version": FORMAT_VERSION, **d}

    @classmethod
    def from_dict(cls, d):
        """Inverse of ``to_dict``. Raises KeyError/TypeError on a malformed dict."""
        d = dict(d)
        d.pop("format_version", None)
        d["bars"] = [Bar(**b) for b in d["bars"]]
        d["visual_beats"] = [VisualBeat(**b) for b in d["visual_beats"]]
        d["motion"] = [(m["t"], m["F"]) for m in d.get("motion", [])]
        return cls(**d)

    def with_min_density(self, min_density):
        """A copy whose bar densities are at least ``min_density``: calm footage asks for calm
        music, not silence (the floor is part of the target the control error is measured on)."""
        import dataclasses

        bars = [dataclasses.replace(b, density=max(b.density, int(min_density)))
                for b in self.bars]
        return dataclasses.replace(self, bars=bars,
                                   settings={**self.settings, "min_density": int(min_density)})

    def to_json(self, path):
        """Write the rhythm to ``path`` atomically (temp file, then rename)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def from_json(cls, path):
        """Load a rhythm written by ``to_json``.

        Raises:
            InputError: missing, unreadable or malformed file.
        """
        try:
            d = json.loads(Path(path).read_text())
            if d.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {d.get('format_version')!r}, "
                                 f"expected {FORMAT_VERSION}")
            return cls.from_dict(d)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise InputError(f"{path}: not a vbgm rhythm file ({e})") from e


def check_tempo(tempo):
    """A user's tempo as float BPM (None = automatic); InputError outside 30-300 BPM."""
    if tempo is None:
        return None
    tempo = float(tempo)
    if not (USER_TEMPO_RANGE[0] <= tempo <= USER_TEMPO_RANGE[1]):
        raise InputError(f"tempo {tempo:g} BPM is outside {USER_TEMPO_RANGE[0]:g}-"
                         f"{USER_TEMPO_RANGE[1]:g}")
    return tempo


def _measure(stream, short_side, progress, expected_s):
    """Consume ``(t, bgr_frame)``: per-frame times, F, deceleration flux, histogram change."""
    times, speed, flux, hdiff = [], [], [], []
    meter = prev_gray = prev_dir = prev_hist = None
    size = None
    next_report = 0.0
    for t, frame in stream:
        t = float(t)
        if times and t <= times[-1]:
            continue  # repeated or backwards time stamp
        if size is None:
            h, w = frame.shape[:2]
            size = frames_mod.analysis_size(w, h, short_side)
            meter = FlowMeter(size)
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        hist = colour_histogram(frame)
        if prev_gray is None:
            speed.append(0.0)
            hdiff.append(0.0)
        else:
            f, direc = meter.measure(prev_gray, gray, t - times[-1])
            speed.append(f)
            hdiff.append(frame_change(prev_hist, hist, prev_gray, gray))
            if prev_dir is not None:  # the flux belongs to the frame the two pairs share
                flux[-1] = beats_mod.deceleration_flux(prev_dir, direc)
            prev_dir = direc
        flux.append(0.0)
        times.append(t)
        prev_gray, prev_hist = gray, hist
        if progress is not None and expected_s and t / expected_s >= next_report:
            progress(min(0.99, t / expected_s))
            next_report = t / expected_s + 0.01
    return (np.asarray(times), np.asarray(speed), np.asarray(flux), np.asarray(hdiff), size)


def _analyze(stream, duration_s, tempo, progress, *, short_side, name, span_s=None,
             expected_s=None, fps_meta=0.0, source=None, start_s=0.0, stats=None):
    """The one implementation behind ``analyze_video`` and ``analyze_frames``.

    ``stats``: the model's music statistics (``Scorer.stats.histograms()``); None reads the
    bundled ones.

    ``duration_s`` None: the duration runs to the end of the last frame, or is exactly
    ``span_s`` (a requested range) when the frames reach to within a frame of it.
    """
    user_tempo = check_tempo(tempo)
    times, speed, flux, hdiff, size = _measure(stream, short_side, progress,
                                               expected_s or duration_s)
    if times.size == 0:
        raise InputError(f"{name}: no video frames could be decoded (empty, audio-only or "
                         "unsupported codec?)")
    if times.size == 1:
        raise InputError(f"{name}: only one frame (a still image?); need a moving picture")
    step = frames_mod.frame_duration(times, fps_meta)
    if duration_s is None:
        duration_s = float(times[-1] + step)
        if span_s is not None and duration_s > span_s - step / 2:
            duration_s = span_s
    if not duration_s > 0:
        raise InputError(f"{name}: duration {duration_s} s is not positive")

    # Cuts: the flow across a cut is meaningless; carry the previous speed over it and keep its
    # flux out of the impact envelope (the cut itself becomes a maximal beat).
    cut_idx = detect_cuts(hdiff)
    speed[0] = speed[1]
    for i in cut_idx:
        speed[i] = speed[i - 1]
        flux[max(0, i - 1): i + 1] = 0.0
    cut_times = [float(times[i]) for i in cut_idx]

    envelope = beats_mod.impact_envelope(times, flux)
    peaks = beats_mod.pick_peaks(times, envelope)
    cand_t = np.concatenate([times[peaks], cut_times])
    cand_s = np.concatenate([envelope[peaks], np.ones(len(cut_times))])
    if user_tempo is None:
        # ending on a bar line (or a beat): the last chord can ring out to the last frame
        tempo_bpm = fit_to_duration(estimate_tempo(cand_t, cand_s), duration_s)
    else:
        tempo_bpm = user_tempo

    # Bars tile the duration: bar k = [k * bar_s, (k + 1) * bar_s).
    bar_s = 60.0 * BEATS_PER_BAR / tempo_bpm
    # a bar within 1e-4 of the end is the end (a MIDI file stores the tempo to the microsecond)
    n_bars = max(1, math.ceil(tempo_bpm * duration_s / 60.0 / BEATS_PER_BAR - 1e-4))
    bar_of_frame = np.minimum((times / bar_s).astype(int), n_bars - 1)
    sums = np.bincount(bar_of_frame, weights=speed, minlength=n_bars)
    counts = np.bincount(bar_of_frame, minlength=n_bars)
    centres = (np.arange(n_bars) + 0.5) * bar_s
    bar_speed = np.where(counts > 0, sums / np.maximum(counts, 1), np.interp(centres, times, speed))
    stats = music_stats() if stats is None else stats
    density = bar_densities(bar_speed, stats)
    bars = [Bar(round(k * bar_s, 6), float(bar_speed[k]), int(density[k])) for k in range(n_bars)]

    # Visual beats: tempo-regular peaks, plus the cuts; one beat per tick (the most salient).
    chosen = beats_mod.select_beats(times[peaks], envelope[peaks], 60.0 / tempo_bpm)
    found = [(float(times[peaks[i]]), float(envelope[peaks[i]]), False) for i in chosen]
    min_gap = 60.0 / tempo_bpm / TICKS_PER_BEAT  # a peak within a tick of a cut is the cut
    found = [b for b in found if all(abs(b[0] - c) >= min_gap for c in cut_times)]
    found += [(c, 1.0, True) for c in cut_times]
    max_tick = n_bars * BEATS_PER_BAR * TICKS_PER_BEAT - 1
    by_tick = {}
    for t, s, is_cut in sorted(found):
        tick = min(max_tick, int(round(tempo_bpm / 60.0 * t * TICKS_PER_BEAT)))
        if tick not in by_tick or s > by_tick[tick][1]:
            by_tick[tick] = (t, s, is_cut)
    ticks = sorted(by_tick)
    strengths = beat_strengths([by_tick[k][1] for k in ticks], stats)
    visual_beats = [VisualBeat(round(by_tick[k][0], 6), int(k), round(by_tick[k][1], 4),
                               int(strengths[i]), by_tick[k][2]) for i, k in enumerate(ticks)]

    if progress is not None:
        progress(1.0)
    return VideoRhythm(
        duration_s=round(float(duration_s), 6), fps=round(1.0 / step, 4),
        tempo_bpm=float(tempo_bpm), n_bars=n_bars, bars=bars, visual_beats=visual_beats,
        cuts=[round(c, 6) for c in cut_times],
        motion=[(round(float(t), 6), round(float(f), 6)) for t, f in zip(times, speed)],
        tempo_source="auto" if user_tempo is None else "user", source=source,
        start_s=float(start_s),
        settings={"short_side": short_side, "analysis_size": list(size),
                  "tempo_range": list(TEMPO_RANGE),
                  "music_stats": "the model's training data" if stats is not None
                  else "default (paper thresholds, linear strength)"})


def analyze_frames(frames, duration_s, tempo=None, progress=None, *,
                   short_side=frames_mod.DEFAULT_SHORT_SIDE, music_stats=None):
    """Analyse frames given by the caller (e.g. a MoviePy clip's ``iter_frames``).

    Args:
        frames: iterable of ``(time_s, frame)``, frame = ``(h, w, 3)`` uint8 RGB, times increasing.
        duration_s: the clip's duration in seconds (bars tile exactly this).
        tempo: BPM of the music grid, or None to choose it from the visual rhythm.
        progress: optional ``progress(fraction)``, fraction in 0..1.
        short_side: analysis resolution.
        music_stats: the model's bar-density / beat-strength histograms (default: bundled).

    Returns:
        ``VideoRhythm``.

    Raises:
        InputError: fewer than two frames, a non-positive duration, a tempo out of range.
    """
    def bgr():
        for t, frame in frames:
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise InputError(f"frames: expected (h, w, 3) uint8 RGB, got {frame.shape} "
                                 f"{frame.dtype}")
            h, w = frame.shape[:2]
            size = frames_mod.analysis_size(w, h, short_side)
            if (w, h) != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            yield t, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)

    if duration_s is None or not float(duration_s) > 0:
        raise InputError(f"frames: duration {duration_s} s is not positive")
    return _analyze(bgr(), float(duration_s), tempo, progress, short_side=short_side,
                    name="frames", stats=music_stats)


def analyze_video(path, tempo=None, start=None, end=None, progress=None, *,
                  short_side=frames_mod.DEFAULT_SHORT_SIDE, music_stats=None):
    """Analyse a video file (or its ``[start, end)`` range). The file is only read.

    Args:
        path: video file.
        tempo: BPM of the music grid, or None to choose it from the visual rhythm.
        start, end: range in seconds; times in the result are relative to ``start``.
        progress: optional ``progress(fraction)``, fraction in 0..1.
        short_side: analysis resolution (short side, pixels).
        music_stats: the model's bar-density / beat-strength histograms (default: bundled).

    Returns:
        ``VideoRhythm``.

    Raises:
        InputError: unreadable file, no or one frame, bad range or tempo.
    """
    check_tempo(tempo)
    start = 0.0 if start is None else _seconds(start, "start", path)
    end = None if end is None else _seconds(end, "end", path)
    if start < 0:
        raise InputError(f"{path}: start {start:g} s is negative")
    if end is not None and end <= start:
        raise InputError(f"{path}: end {end:g} s is not after start {start:g} s")
    info = frames_mod.probe(path)
    if info.duration_s is not None and start >= info.duration_s:
        raise InputError(f"{path}: start {start:g} s is past the end ({info.duration_s:.3f} s)")
    # A container's duration may pass its video stream's by up to a frame (its audio runs on):
    # an end there is "to the end", not a range the video does not hold.
    slack = frames_mod.frame_duration((), info.fps_meta)
    if end is not None and info.duration_s is not None and end > info.duration_s + slack:
        warnings.warn(RangeWarning(
            f"{path}: end {end:g} s is past the end of the video ({info.duration_s:.3f} s); "
            f"the range is {start:g}-{info.duration_s:.3f} s"), stacklevel=2)
    expected = None
    if info.duration_s is not None:
        expected = (min(float(end), info.duration_s) if end is not None else info.duration_s) \
            - start
    stream = frames_mod.iter_frames(path, short_side, start, end, info=info)
    return _analyze(stream, None, tempo, progress, short_side=short_side, name=str(path),
                    # the duration of record (ffprobe's) caps the frames' own end
                    span_s=expected if expected is not None else
                    None if end is None else float(end) - start, expected_s=expected,
                    fps_meta=info.fps_meta, source=str(path), start_s=start,
                    stats=music_stats)
