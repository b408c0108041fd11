"""Edit lists: a timeline made of clips (an editor's cut), analysed as the viewer sees it.

An editor (the Blender add-on) describes what plays when as JSON:

    {"vbgm_edit": 1, "duration_s": 12.0, "fps": 30,
     "segments": [{"path": "/abs/a.mp4", "source_start_s": 2.0, "source_end_s": 6.0,
                   "timeline_start_s": 0.0, "audio": true}, ...]}

Segments are in timeline order and do not overlap; time no segment covers is a gap (a black,
still picture). ``timeline_end_s`` is optional: without it a segment plays at its source's
speed; with it, the source range is stretched over ``[timeline_start_s, timeline_end_s)``
(a 25 fps movie in a 30 fps Blender scene plays one source frame per scene frame, 1.2x fast).
``audio`` says whether the segment's own sound plays in the edit (where speech is looked for).
An editor whose sound plays apart from the picture (Blender plays sound strips at their own
speed while a movie strip at another frame rate runs fast or slow) lists what is heard in
``"sounds"``: ``[{"path", "source_start_s", "source_end_s", "timeline_start_s"}, ...]``,
played at real speed; speech is then looked for there only.

``analyze_edit`` measures each segment's visible source range, in timeline time, and joins them
into one ``VideoRhythm`` over the whole timeline with every strip boundary as a cut.
"""

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_path
from . import frames as frames_mod
from .mapping import beat_strengths
from .mapping import music_stats as load_music_stats
from .rhythm import BEATS_PER_BAR, TICKS_PER_BEAT, VisualBeat, analyze_frames

EDIT_KEY, EDIT_VERSION = "vbgm_edit", 1
# Segments may touch or overlap by this much (rounding of frame times by the editor).
_EPS_S = 1e-6


@dataclass(frozen=True)
class Segment:
    """One clip on the timeline: source ``[source_start_s, source_end_s)`` of ``path`` plays
    over timeline ``[timeline_start_s, timeline_end_s)``. ``path`` None is a still picture made
    by the editor (a title, a solid colour): no media, no sound, analysed like a gap."""

    path: Path | None
    source_start_s: float
    source_end_s: float
    timeline_start_s: float
    timeline_end_s: float
    audio: bool = True

    @property
    def rate(self):
        """Timeline seconds per source second (1.0 = real speed; < 1 = played faster)."""
        return (self.timeline_end_s - self.timeline_start_s) / (self.source_end_s - self.source_start_s)

    def to_timeline(self, source_offset_s):
        """Timeline time of a time given in seconds from ``source_start_s``."""
        return self.timeline_start_s + source_offset_s * self.rate


@dataclass(frozen=True)
class EditList:
    """The timeline: ``duration_s`` seconds at ``fps`` with its ``segments`` (a tuple), and
    the ``sounds`` heard apart from the picture (a tuple of Segments at rate 1, maybe empty:
    nothing heard; None: the segments' own sound is heard, where ``audio``)."""

    duration_s: float
    fps: float
    segments: tuple
    source: Path | None = None  # the JSON file it was read from
    sounds: tuple | None = None

    def to_dict(self):
        return {EDIT_KEY: EDIT_VERSION, "duration_s": self.duration_s, "fps": self.fps,
                "segments": [{"path": None if s.path is None else str(s.path),
                              "source_start_s": s.source_start_s,
                              "source_end_s": s.source_end_s,
                              "timeline_start_s": s.timeline_start_s,
                              "timeline_end_s": s.timeline_end_s, "audio": s.audio}
                             for s in self.segments],
                **({"sounds": [{"path": str(s.path), "source_start_s": s.source_start_s,
                                "source_end_s": s.source_end_s,
                                "timeline_start_s": s.timeline_start_s} for s in self.sounds]}
                   if self.sounds is not None else {})}

    def to_json(self, path):
        """Write the edit list to ``path`` atomically."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def from_dict(cls, d, name="edit list", base=None):
        """Check and load a parsed edit list; relative clip paths are taken from ``base``.

        Raises:
            InputError: one line naming ``name`` and what is wrong.
        """
        def fail(message):
            raise InputError(f"{name}: {message}")

        def number(obj, key, where, default=None):
            value = obj.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                fail(f"{where}{key} must be a number, not {value!r}")
            return float(value)

        if not isinstance(d, dict) or EDIT_KEY not in d:
            fail(f'not a vbgm edit list (no "{EDIT_KEY}" key)')
        if d[EDIT_KEY] != EDIT_VERSION:
            fail(f"{EDIT_KEY} {d[EDIT_KEY]!r} is not a version this vbgm reads ({EDIT_VERSION})")
        duration, fps = number(d, "duration_s", ""), number(d, "fps", "")
        if duration <= 0 or fps <= 0:
            fail(f"duration_s ({duration:g}) and fps ({fps:g}) must be positive")
        items = d.get("segments")
        if not isinstance(items, list) or not items:
            fail("segments must be a non-empty list (nothing to score)")
        segments, covered = [], 0.0
        for i, item in enumerate(items, 1):
            where = f"segment {i}: "
            if not isinstance(item, dict) or not isinstance(item.get("path", 0), (str, type(None))):
                fail(f"{where}needs a path (string; null for a still picture)")
            still = item["path"] is None
            path = None if still else Path(item["path"]).expanduser()
            path = path if still or path.is_absolute() or base is None else Path(base) / path
            s0, s1 = number(item, "source_start_s", where), number(item, "source_end_s", where)
            t0 = number(item, "timeline_start_s", where)
            t1 = number(item, "timeline_end_s", where, t0 + s1 - s0)
            audio = item.get("audio", not still)
            if not isinstance(audio, bool):
                fail(f"{where}audio must be true or false, not {audio!r}")
            if not 0 <= s0 < s1:
                fail(f"{where}source range {s0:g}-{s1:g} s is empty or negative")
            if not (t0 >= covered - _EPS_S and t1 > t0):
                fail(f"{where}starts at {t0:g} s, before the previous segment ends "
                     f"({covered:g} s): segments must be in timeline order, not overlapping")
            if t1 > duration + _EPS_S:
                fail(f"{where}ends at {t1:g} s, after the edit's duration_s {duration:g} s")
            if not still and not path.is_file():
                fail(f"{where}{path}: no such file")
            segments.append(Segment(path, s0, s1, t0, min(t1, duration), audio and not still))
            covered = t1
        if all(s.path is None for s in segments):
            fail("no segment has a path (only still pictures: nothing to analyse)")
        sounds = d.get("sounds")
        if sounds is not None and not isinstance(sounds, list):
            fail("sounds must be a list")
        heard = []
        for i, item in enumerate(sounds or (), 1):
            where = f"sound {i}: "
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                fail(f"{where}needs a path (string)")
            path = Path(item["path"]).expanduser()
            path = path if path.is_absolute() or base is None else Path(base) / path
            s0, s1 = number(item, "source_start_s", where), number(item, "source_end_s", where)
            t0 = number(item, "timeline_start_s", where)
            if not 0 <= s0 < s1 or t0 < 0:
                fail(f"{where}source range {s0:g}-{s1:g} s at {t0:g} s is empty or negative")
            if not path.is_file():
                fail(f"{where}{path}: no such file")
            heard.append(Segment(path, s0, s1, t0, min(t0 + s1 - s0, duration), True))
        return cls(duration, fps, tuple(segments),
                   sounds=None if sounds is None else tuple(heard))

    @classmethod
    def from_json(cls, path):
        """Load an edit list file (see the module's docstring).

        Raises:
            InputError: missing or unreadable file, or bad content (one line naming the file).
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: not a readable edit list ({e})") from None
        return replace(cls.from_dict(d, str(path), base=path.resolve().parent), source=path)


def is_edit_list(path):
    """Whether a scoring input is an edit list (a .json file) rather than a video."""
    return path is not None and Path(path).suffix.lower() == ".json"


def _timeline_frames(edit, short_side):
    """``(timeline_s, RGB frame)`` for the whole edit: each segment's source frames at their
    timeline times, black frames at ``edit.fps`` through the gaps."""
    first = frames_mod.probe(next(s.path for s in edit.segments if s.path is not None))
    w, h = frames_mod.analysis_size(first.width, first.height, short_side)
    black = np.zeros((h, w, 3), np.uint8)

    def still(t0, t1):
        n = max(0, math.ceil((t1 - t0) * edit.fps - 1e-9))
        for k in range(n):
            yield t0 + k / edit.fps, black

    covered = 0.0
    for seg in (s for s in edit.segments if s.path is not None):  # stills: black, like gaps
        yield from still(covered, seg.timeline_start_s)
        for t, bgr in frames_mod.iter_frames(seg.path, short_side, seg.source_start_s,
                                             seg.source_end_s):
            t = seg.to_timeline(t)
            if t >= seg.timeline_end_s:
                break
            yield t, np.ascontiguousarray(bgr[:, :, ::-1])
        covered = seg.timeline_end_s
    yield from still(covered, edit.duration_s)


def boundaries(edit):
    """Timeline times (s) where the picture changes strip: every segment start and end inside
    the edit (a gap's start and end included), sorted, without duplicates."""
    times = {round(t, 6) for s in edit.segments for t in (s.timeline_start_s, s.timeline_end_s)}
    return sorted(t for t in times if _EPS_S < t < edit.duration_s - _EPS_S)


def _force_cuts(rhythm, times, tolerance_s, stats):
    """``rhythm`` with a cut (a maximal visual beat, as the analysis makes for the cuts it
    detects; its strength from the music ``stats``) at each of ``times`` that has no detected
    cut within ``tolerance_s``."""
    missing = [t for t in times if all(abs(t - c) > tolerance_s for c in rhythm.cuts)]
    if not missing:
        return rhythm
    tick_s = 60.0 / rhythm.tempo_bpm / TICKS_PER_BEAT
    max_tick = rhythm.n_bars * BEATS_PER_BAR * TICKS_PER_BEAT - 1
    strength = int(beat_strengths(np.ones(1), stats)[0])
    beats = {b.tick: b for b in rhythm.visual_beats
             if b.cut or all(abs(b.time_s - t) >= tick_s for t in missing)}  # the cut wins
    for t in missing:
        tick = min(max_tick, int(round(t / tick_s)))
        if tick not in beats or not beats[tick].cut:  # a detected cut on that tick stays
            beats[tick] = VisualBeat(round(t, 6), tick, 1.0, strength, True)
    return replace(rhythm, cuts=sorted(rhythm.cuts + [round(t, 6) for t in missing]),
                   visual_beats=[beats[k] for k in sorted(beats)])


def analyze_edit(edit, tempo=None, progress=None, *, short_side=frames_mod.DEFAULT_SHORT_SIDE,
                 music_stats=None):
    """The rhythm of an edit as it plays: one ``VideoRhythm`` over ``[0, edit.duration_s)``.

    Each segment's visible source range is decoded and its frames placed at their timeline
    times (so a segment played fast moves fast); gaps are black and still. The frames go
    through ``analyze_frames`` as one clip, so the tempo, bars and beats are chosen for the
    whole edit, and every strip boundary is a cut, found in the picture or not (a strip
    split in the middle of a shot is still an editor's cut).

    Args:
        edit: an ``EditList``.
        tempo: BPM of the music grid, or None to choose it from the visual rhythm.
        progress: optional ``progress(fraction)``.
        short_side: analysis resolution.
        music_stats: the model's bar-density / beat-strength histograms (default: bundled).

    Raises:
        InputError: an unreadable clip, or a tempo out of range.
    """
    rhythm = analyze_frames(_timeline_frames(edit, short_side), edit.duration_s, tempo,
                            progress, short_side=short_side, music_stats=music_stats)
    # A detected cut lands on the first analysed frame of the new strip: within a frame of
    # the boundary at the slower of the edit's and the clips' frame rates.
    tolerance = 1.5 / min(edit.fps, rhythm.fps)
    stats = load_music_stats() if music_stats is None else music_stats
    rhythm = _force_cuts(rhythm, boundaries(edit), tolerance, stats)
    return replace(rhythm, source=str(edit.source) if edit.source else None, start_s=0.0)
