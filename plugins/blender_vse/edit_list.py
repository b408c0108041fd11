"""Strips → edit list: what the viewer sees, in timeline order, as vbgm's JSON edit list
(``vbgm_core/video/edit.py``; the add-on never imports the core, so the format is written here).

The picture at a frame is the topmost unmuted movie strip there (a meta strip's content is
flattened: its children, cut to the meta's own handles, stacked by the meta's channel, then
theirs). Consecutive frames from one strip make one segment; frames showing no movie are gaps.

Blender plays a movie strip one source frame per scene frame, whatever the movie's frame rate:
a run of frames ``[a, b)`` shows source seconds ``(a - frame_start) / movie fps`` to
``(b - frame_start) / movie fps`` over timeline seconds ``(a - span start) / scene fps`` to
``(b - span start) / scene fps``. Both go into the segment, so a 25 fps movie in a 30 fps scene
is analysed as it plays (1.2x fast) and the music lasts exactly the span.

Sound strips are not sped up: Blender plays them at real speed from their content start
(``frame_start``, shifted by ``sound_offset`` seconds), whatever the scene's frame rate. So the
sound the viewer hears goes into the edit list on its own (``sounds``: what plays where, at rate
1), which is where the core looks for speech to duck under; a movie's frames at another speed
would put its speech at the wrong times. The segments' ``audio`` flags stay for a core that
does not read ``sounds``.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from . import strips

EDIT_VERSION = 1


@dataclass
class EditPlan:
    """What one "Generate Score" scores.

    Attributes:
        frame_start, frame_end: the scored span in timeline frames (end exclusive).
        fps: the scene's frame rate.
        segments: the edit list's segments (JSON-ready dicts, timeline order).
        label: a name for the take ("bikes", "bikes +2", the scene's name).
        key: identifies what was scored, so that a new take mutes the earlier ones.
        channel: the channel the score strip should sit next to.
        originals: names of the sound strips playing the scored movies' own sound (what
            "Original Sound" keeps, lowers or mutes).
        sounds: the sound heard over the span (JSON-ready dicts: path, source_start_s,
            source_end_s, timeline_start_s; rate 1), where the core looks for speech.
        warnings: notes for the user.
    """

    frame_start: int
    frame_end: int
    fps: float
    segments: list
    label: str
    key: str
    channel: int
    originals: list = field(default_factory=list)
    sounds: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def n_frames(self):
        return self.frame_end - self.frame_start

    @property
    def duration_s(self):
        return self.n_frames / self.fps

    def to_dict(self):
        return {"vbgm_edit": EDIT_VERSION, "duration_s": self.duration_s, "fps": self.fps,
                "segments": self.segments, "sounds": self.sounds}

    def write(self, path):
        """Write the edit list for `vbgm score EDIT.json`."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)


@dataclass
class _Piece:
    """A movie strip's frames ``[start, end)`` that may show, with its stacking order."""

    strip: object
    start: int
    end: int
    stack: tuple  # channels from the top level down; higher draws over lower


def _muted(strip, channels):
    return strip.mute or channels[strip.channel].mute


def _pieces(container, channels, window, stack, out):
    """Collect the movie strips of ``container`` (recursing into meta strips), each cut to
    ``window`` (the enclosing metas' visible frames)."""
    for s in container:
        if _muted(s, channels) or s.type not in ("MOVIE", "META"):
            continue
        start, end = strips.visible_frames(s)
        start, end = max(start, window[0]), min(end, window[1])
        if end <= start:
            continue
        if s.type == "META":
            _pieces(s.strips, s.channels, (start, end), stack + (s.channel,), out)
        else:
            out.append(_Piece(s, start, end, stack + (s.channel,)))


def _runs(pieces):
    """``[(strip, start, end)]``: the topmost piece over each stretch of frames, merged."""
    edges = sorted({p.start for p in pieces} | {p.end for p in pieces})
    runs = []
    for a, b in zip(edges, edges[1:]):
        showing = [p for p in pieces if p.start <= a and b <= p.end]
        if not showing:
            continue
        top = max(showing, key=lambda p: p.stack).strip
        if runs and runs[-1][0] == top and runs[-1][2] == a:
            runs[-1] = (top, runs[-1][1], b)
        else:
            runs.append((top, a, b))
    return runs


def movie_path(scene, strip):
    """Absolute path of a movie strip's file.

    Raises:
        StripError: the file is missing.
    """
    path = Path(bpy.path.abspath(strip.filepath, library=scene.library)).resolve()
    if not path.is_file():
        raise strips.StripError(f"Movie file of strip '{strip.name}' is missing: {path}")
    return path


def _sound_path(scene, strip):
    sound = strip.sound
    if sound is None:
        return None
    return Path(bpy.path.abspath(sound.filepath, library=sound.library)).resolve()


def _heard(strip):
    """Whether a sound strip plays (a strip vbgm muted still counts as the edit's sound)."""
    return not strip.mute or strips.ORIGINAL_KEY in strip


def _heard_sounds(container, channels, window, out):
    """Collect the sound strips of ``container`` that play (recursing into meta strips, as
    :func:`_pieces` does for the picture): ``(strip, start, end)``, cut to ``window``. A muted
    channel or meta silences what it holds; the score takes are vbgm's music, not the edit's."""
    for s in container:
        if channels[s.channel].mute:
            continue
        if s.type == "META" and not s.mute:
            start, end = strips.visible_frames(s)
            start, end = max(start, window[0]), min(end, window[1])
            if start < end:
                _heard_sounds(s.strips, s.channels, (start, end), out)
        elif s.type == "SOUND" and _heard(s) and strips.SOURCE_KEY not in s:
            start, end = strips.visible_frames(s)
            start, end = max(start, window[0]), min(end, window[1])
            if start < end:
                out.append((s, start, end))


def _sound_entry(path, strip, a, b, span_start, fps):
    """The edit list's ``sounds`` item for a sound strip heard over frames ``[a, b)``, or None
    when only silence before the sound's start plays there.

    Blender plays the file at real speed: timeline second ``f / fps`` hears the file at
    ``(f - frame_start + animation_offset_start) / fps - sound_offset`` (audaspace's entry,
    BKE_sound_move_scene_sound_defaults); the scene's frame rate changes nothing.
    """
    source = (a - strip.frame_start + strip.animation_offset_start) / fps - strip.sound_offset
    timeline = (a - span_start) / fps
    length = (b - a) / fps
    if source < 0:  # a positive sound offset: silence until the file starts
        timeline, length, source = timeline - source, length + source, 0.0
    if length <= 0:
        return None
    return {"path": str(path), "source_start_s": source, "source_end_s": source + length,
            "timeline_start_s": timeline}


def _sounds(scene, span, fps, warnings):
    """``(sounds for the edit list, [(strip, start, end, path)] heard)``."""
    heard = []
    _heard_sounds(strips.top_strips(scene.sequence_editor), scene.sequence_editor.channels, span,
                  heard)
    entries, playing = [], []
    for strip, a, b in heard:
        path = _sound_path(scene, strip)
        if path is None or not path.is_file():  # packed or missing: nothing the core can read
            warnings.append(f"Sound of '{strip.name}' is not a file on disk: its speech is not "
                            "looked for")
            continue
        if len(strip.retiming_keys):
            warnings.append(f"Sound strip '{strip.name}' is retimed: its speech is not looked for")
            continue
        entry = _sound_entry(path, strip, a, b, span[0], fps)
        if entry is not None:
            entries.append(entry)
            playing.append((strip, a, b, path))
    entries.sort(key=lambda e: (e["timeline_start_s"], e["source_start_s"], e["path"]))
    return entries, playing


def _movie_sounds(scene, files):
    """Sound strips playing one of ``files`` (the movies' own sound): ``[(strip, start, end)]``."""
    found = []
    for s in strips.all_strips(scene.sequence_editor):
        if s.type == "SOUND" and strips.SOURCE_KEY not in s and _sound_path(scene, s) in files:
            found.append((s, *strips.visible_frames(s)))
    return found


def _roots(scene, source):
    editor = scene.sequence_editor
    if editor is None:
        raise strips.StripError("Nothing to score: this scene has no sequencer strips")
    top = [s for s in strips.top_strips(editor) if s.type in ("MOVIE", "META")]
    if source == "SCENE":
        return top
    selected = [s for s in top if s.select]
    if not selected:
        raise strips.StripError("No movie or meta strip selected: select the strips to score "
                                "(or score the scene range)")
    return selected


def build(scene, source="SELECTED", use_scene_range=True):
    """The :class:`EditPlan` for the selected movie/meta strips (``source`` "SELECTED") or for
    the scene's frame range ("SCENE").

    The span runs from the first selected strip's first visible frame to the last one's end
    (cut to the scene's range with ``use_scene_range``), or is the scene's range.

    Raises:
        StripError: nothing to score, a missing movie file, or a strip whose timing vbgm
            cannot follow (retimed or reversed).
    """
    roots = _roots(scene, source)
    scene_range = (scene.frame_start, scene.frame_end + 1)
    if source == "SCENE":
        span = scene_range
    else:
        edges = [strips.visible_frames(s) for s in roots]
        span = (min(a for a, _ in edges), max(b for _, b in edges))
        if use_scene_range:
            span = (max(span[0], scene_range[0]), min(span[1], scene_range[1]))
    pieces = []
    _pieces(roots, scene.sequence_editor.channels, span, (), pieces)
    runs = _runs(pieces)
    if not runs:
        where = f"frames {span[0]}-{span[1] - 1}" if span[1] > span[0] else "the scene's range"
        raise strips.StripError(f"No movie frames to score in {where} (muted, trimmed away or "
                                "outside the scene's frame range?)")
    fps = scene.render.fps / scene.render.fps_base
    files = {}
    warnings = []
    for strip, _, _ in runs:
        if strip.name in files:
            continue
        files[strip.name] = movie_path(scene, strip)
        if len(strip.retiming_keys) or strip.use_reverse_frames:
            raise strips.StripError(f"Strip '{strip.name}' is retimed or reversed: vbgm follows "
                                    "strips that play forwards at one source frame per frame")
        movie_fps = strip.fps or fps
        if abs(movie_fps - fps) > 1e-3 * fps:
            # N source frames (N / movie_fps s) play in N scene frames (N / fps s)
            warnings.append(f"'{strip.name}' is {movie_fps:g} fps in a {fps:g} fps scene: it plays "
                            f"{fps / movie_fps:.3g}x as fast; the music follows it as it plays")
    originals = _movie_sounds(scene, set(files.values()))
    sounds, heard = _sounds(scene, span, fps, warnings)
    segments = []
    for strip, a, b in runs:
        movie_fps = strip.fps or fps
        path = files[strip.name]
        # Where the movie's own file is heard (the fallback for a core without ``sounds``).
        audio = any(p == path and s0 < b and a < s1 for _, s0, s1, p in heard)
        segments.append({"path": str(path),
                         "source_start_s": (a - strip.frame_start) / movie_fps,
                         "source_end_s": (b - strip.frame_start) / movie_fps,
                         "timeline_start_s": (a - span[0]) / fps,
                         "timeline_end_s": (b - span[0]) / fps, "audio": audio})
    if source == "SCENE":
        label, key = scene.name, f"scene:{scene.name}"
    else:
        names = sorted(s.name for s in roots)
        label = roots[0].name if len(roots) == 1 else f"{names[0]} +{len(names) - 1}"
        key = "|".join(names)
    return EditPlan(span[0], span[1], fps, segments, label, key,
                    channel=min(s.channel for s in roots),
                    originals=[s.name for s, s0, s1 in originals if s0 < span[1] and span[0] < s1],
                    sounds=sounds, warnings=warnings)
