"""The sequencer side: where the score goes, its level (volume keyframes when ducked), and
the level of the sound it plays over. Which frames are scored is edit_list.py's part.

Blender 4.4 added ``sequence_editor.strips`` and 5.0 removed ``sequences``; the helpers here
are the only place that knows both spellings.
"""

import json
import math
import tempfile
from pathlib import Path

import bpy

MAX_CHANNEL = 128
SCORE_FOLDER = "vbgm_scores"  # beside the .blend
SOURCE_KEY = "vbgm_source"  # custom property on a score strip: what it scores (EditPlan.key)
ORIGINAL_KEY = "vbgm_original_volume"  # on a sound strip whose level vbgm changed: the user's
REPORT_KEY = "vbgm_report"  # on a score take: the core's JSON report (tempo, bars)
# On a score take: the timeline markers Add Bar Markers made for it, JSON [[name, frame], ...].
# Markers hold no custom properties, so this is how vbgm tells its markers from the user's.
MARKERS_KEY = "vbgm_bar_markers"
BEATS_PER_BAR = 4  # vbgm's music is in 4/4 (the CMT's bar grid)


class StripError(Exception):
    """The scene offers nothing to score; the message is one line for a Blender report."""


def top_strips(editor):
    """The editor's top-level strip collection (``strips`` ≥ 4.4, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor):
    """Every strip, inside meta strips too (``strips_all`` ≥ 4.4, ``sequences_all`` before)."""
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def visible_frames(strip):
    """Timeline frames [start, end) a strip shows after its handles (trims) are applied."""
    if hasattr(strip, "frame_final_start"):
        return int(strip.frame_final_start), int(strip.frame_final_end)
    # Where the frame_final_* names are gone: content start plus the trims.
    start = strip.frame_start + strip.frame_offset_start
    return int(round(start)), int(round(strip.frame_start + strip.frame_duration - strip.frame_offset_end))


def free_channel(scene, frame_start, frame_end, near):
    """The channel closest to ``near`` (below first, then above) with nothing in
    [frame_start, frame_end).

    Raises:
        StripError: every channel is taken there.
    """
    busy = set()
    for s in top_strips(scene.sequence_editor):
        s0, s1 = visible_frames(s)
        if s0 < frame_end and frame_start < s1:
            busy.add(s.channel)
    below = range(near - 1, 0, -1)
    above = range(near + 1, MAX_CHANNEL + 1)
    for channel in (*below, *above):
        if channel not in busy:
            return channel
    raise StripError(f"No free channel for the score between frames {frame_start} and {frame_end}")


def output_folder():
    """Where scores are written: ``vbgm_scores/`` beside the saved .blend, else a temp dir."""
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//")) / SCORE_FOLDER
    else:
        folder = Path(tempfile.gettempdir()) / SCORE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def db_to_gain(db):
    """Decibels → Blender's linear volume."""
    return 10.0 ** (float(db) / 20.0)


def add_score_strip(scene, plan, wav, name, extra=None):
    """Insert ``wav`` as a sound strip over the span of ``plan`` (an ``edit_list.EditPlan``)
    next to the scored strips; earlier takes of the same strips are muted, not removed.

    Args:
        scene: the scene whose sequencer gets the strip.
        plan: what was scored.
        wav: the score's WAV file.
        name: strip name.
        extra: custom properties to store on the strip (str/int/float values).

    Returns:
        The new sound strip.
    """
    channel = free_channel(scene, plan.frame_start, plan.frame_end, plan.channel)
    sound = _new_take(scene, plan.key, wav, name, channel, plan.frame_start, extra)
    # The WAV lasts the span to the sample; Blender rounds it to whole frames, possibly one
    # more than the span: never let the strip run past it.
    sound.frame_final_duration = min(plan.n_frames, sound.frame_duration)
    return sound


def add_take_like(scene, old, wav, name, extra=None):
    """Insert ``wav`` (a re-roll of the take ``old``: the same span, the same length) where
    ``old`` plays: the same content start and handles, on the nearest free channel. ``old``
    and the other takes of the same strips are muted.

    Returns:
        The new sound strip.
    """
    start, end = visible_frames(old)
    channel = free_channel(scene, start, end, old.channel)
    sound = _new_take(scene, old.get(SOURCE_KEY), wav, name, channel,
                      int(round(old.frame_start)), extra)
    old.mute = True   # a take vbgm did not record its source on is muted too
    sound.frame_final_end = min(end, int(round(sound.frame_start + sound.frame_duration)))
    sound.frame_final_start = start
    return sound


def _new_take(scene, key, wav, name, channel, frame_start, extra):
    """A sound strip for ``wav`` whose content starts at ``frame_start``, recorded as a take of
    ``key``; the earlier takes of ``key`` are muted."""
    editor = scene.sequence_editor
    filepath = str(wav)
    if bpy.data.filepath:
        try:  # relative to the .blend, so the project folder can move
            filepath = bpy.path.relpath(filepath)
        except ValueError:  # another drive on Windows
            pass
    if key is not None:
        for s in top_strips(editor):
            if s.type == "SOUND" and s.get(SOURCE_KEY) == key:
                s.mute = True
    sound = top_strips(editor).new_sound(name, filepath, channel, frame_start)
    if key is not None:
        sound[SOURCE_KEY] = key
    for k, value in (extra or {}).items():
        sound[k] = value
    return sound


def is_take(strip):
    """Whether ``strip`` is a score take vbgm made (a sound strip naming its MIDI and edit list)."""
    return strip is not None and strip.type == "SOUND" and "vbgm_midi" in strip and "vbgm_edit" in strip


def selected_take(scene):
    """The take to re-roll: the active strip if it is a take, else the one selected take
    (None when there is none, or several)."""
    editor = scene.sequence_editor
    if editor is None:
        return None
    if is_take(editor.active_strip):
        return editor.active_strip
    takes = [s for s in top_strips(editor) if s.select and is_take(s)]
    return takes[0] if len(takes) == 1 else None


def next_seed(scene, take, default):
    """A seed no take of the same strips used: one more than the highest they recorded
    (``vbgm_seed``), else ``default`` + 1."""
    key = take.get(SOURCE_KEY)
    seeds = [s["vbgm_seed"] for s in top_strips(scene.sequence_editor) if is_take(s)
             and "vbgm_seed" in s and (s == take or (key is not None and s.get(SOURCE_KEY) == key))]
    return (max(seeds) if seeds else default) + 1


def playhead_in_take(scene, take):
    """Seconds from the take's start (its music's first sample) to the playhead.

    Raises:
        StripError: the playhead is outside the take's visible frames, or at its first
            sample (nothing before it to keep).
    """
    frame = scene.frame_current
    start, end = visible_frames(take)
    if not start <= frame < end:
        raise StripError(f"The playhead (frame {frame}) is outside '{take.name}' (frames "
                         f"{start}-{end - 1}): put it where the new music should start")
    seconds = (frame - take.frame_start) / (scene.render.fps / scene.render.fps_base)
    if seconds <= 0:
        raise StripError(f"The playhead is at the start of '{take.name}', before its first bar: "
                         "nothing to keep (Generate Score makes a new take)")
    return seconds


def take_report(take):
    """The core's report of a take (a dict with at least tempo_bpm, n_bars, duration_s).

    Raises:
        StripError: the take has no report (made before takes kept one), or it is missing
            or unreadable.
    """
    if REPORT_KEY not in take:
        raise StripError(f"'{take.name}' has no report (made by an older vbgm add-on): "
                         "generate or re-roll it again")
    path = Path(bpy.path.abspath(take[REPORT_KEY]))
    try:
        report = json.loads(path.read_text())
        float(report["tempo_bpm"]), int(report["n_bars"]), float(report["duration_s"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StripError(f"The report of '{take.name}' is missing or unreadable: {path} ({e})") from None
    return report


def bar_lines(take, report, fps):
    """The take's bar lines inside its visible frames: ``[("bar 1", frame), ...]``.

    Bar k (from 0) starts k * 240 / tempo seconds after the music's first sample, which plays
    at the strip's content start (``frame_start``; trims only hide music). A bar line rarely
    falls on a frame: it gets the nearest one (halves round up, not to even), and is kept when
    that frame shows the strip, so that every marker sits on the take.
    """
    bar_s = BEATS_PER_BAR * 60.0 / float(report["tempo_bpm"])
    start, end = visible_frames(take)
    lines = []
    for k in range(int(report["n_bars"])):
        if k * bar_s >= float(report["duration_s"]):  # the music ends before this bar
            break
        frame = math.floor(take.frame_start + k * bar_s * fps + 0.5)
        if start <= frame < end:
            lines.append((f"bar {k + 1}", frame))
    return lines


def set_bar_markers(scene, take, lines):
    """Replace the markers vbgm added for ``take`` with ``lines`` (``[(name, frame)]``). A
    marker the user renamed or moved is no longer vbgm's and stays; so do all others."""
    markers = scene.timeline_markers
    try:
        previous = json.loads(take.get(MARKERS_KEY, "[]"))
    except ValueError:
        previous = []
    for name, frame in previous:
        mine = next((m for m in markers if m.name == name and m.frame == frame), None)
        if mine is not None:
            markers.remove(mine)
    for name, frame in lines:
        markers.new(name, frame=frame)
    take[MARKERS_KEY] = json.dumps([[name, frame] for name, frame in lines])


def set_music_level(scene, sound, points, fps):
    """The score strip's level: ``points`` ``[(t_s, dB), ...]`` from the strip's start.

    One level sets ``volume``; a curve (ducking) becomes volume keyframes (times from the
    strip's content start, the WAV's first sample), linear, which is
    how vbgm's gain curve moves between its breakpoints (vbgm_core/audio/mix.py), so the strip
    plays what a muxed file would. The keyframes stay editable in the timeline.
    """
    levels = {round(db, 6) for _, db in points}
    if len(levels) == 1:
        sound.volume = db_to_gain(points[0][1])
        return
    # Two breakpoints at one time (a zero-length ramp): the later one holds, as in the curve.
    for t, db in points:
        sound.volume = db_to_gain(db)
        sound.keyframe_insert("volume", frame=sound.frame_start + t * fps)
    path = sound.path_from_id("volume")
    for fcurve in _fcurves(scene):
        if fcurve.data_path == path:
            for key in fcurve.keyframe_points:
                key.interpolation = "LINEAR"


def _fcurves(scene):
    """The scene action's F-curves (slotted actions in 4.4+, ``action.fcurves`` before)."""
    action = scene.animation_data.action
    if hasattr(action, "fcurves") and not getattr(action, "is_action_layered", False):
        return action.fcurves
    from bpy_extras import anim_utils

    return anim_utils.action_get_channelbag_for_slot(action, scene.animation_data.action_slot).fcurves


def set_original_level(scene, names, mode, gain_db):
    """Keep, lower (to ``gain_db``) or mute the sound strips ``names`` (the scored movies' own
    sound). The user's volume is remembered on the strip the first time vbgm changes it, so
    every take sets the same level, and "keep" restores it."""
    every = all_strips(scene.sequence_editor)
    for name in names:
        s = every.get(name)
        if s is None:
            continue
        if ORIGINAL_KEY not in s:
            if mode == "KEEP":
                continue
            s[ORIGINAL_KEY] = s.volume
        s.mute = mode == "MUTE"
        s.volume = s[ORIGINAL_KEY] * (db_to_gain(gain_db) if mode == "LOWER" else 1.0)
        if mode == "KEEP":
            del s[ORIGINAL_KEY]
