"""Add Bar Markers (issue 25) in Blender (real bpy): timeline markers at a score take's bar
lines, from the take's report, on the nearest frames of a 23.976 fps scene; the markers vbgm
added for a take are replaced, the user's never touched.

The takes here are sound strips made with the data API and given a report, as Generate Score
leaves them (the model is not run: tests/test_blender_reroll.py adds markers to a real take).
Run with .venv-blender.
"""

import json
import wave
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy", reason="bpy not installed: run with .venv-blender (scripts/setup_blender_venv.sh)")

# 24000/1001 fps: a bar of 100 BPM (2.4 s) is 57.5425 frames, so bar lines fall between frames,
# and at 24 fps (fps_base ignored) bars 7 and 9 would land one frame later.
FPS, FPS_BASE = 24, 1.001
START = 11  # the take's content start: its music's first sample


@pytest.fixture(scope="module")
def addon(registered_addon):
    return registered_addon


def silent_wav(path, seconds, rate=8000):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * round(seconds * rate))
    return path


def add_take(sc, folder, name, channel, tempo_bpm=100.0, n_bars=9, duration_s=20.0, report=True):
    """A take as Generate Score leaves it: a sound strip naming its MIDI, edit list and report."""
    wav = silent_wav(folder / f"{name}.wav", duration_s)
    take = sc.sequence_editor.strips.new_sound(name, str(wav), channel, START)
    take["vbgm_midi"], take["vbgm_edit"] = str(folder / f"{name}.mid"), str(folder / f"{name}.json")
    if report:
        path = folder / f"{name}.report.json"
        path.write_text(json.dumps({"tempo_bpm": tempo_bpm, "n_bars": n_bars, "duration_s": duration_s}))
        take["vbgm_report"] = str(path)
    return take


@pytest.fixture
def scene(addon, tmp_path):
    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = FPS, FPS_BASE
    sc.frame_start, sc.frame_end = 1, 600
    sc.sequence_editor_create()
    return sc


def markers(sc):
    return sorted((m.frame, m.name) for m in sc.timeline_markers)


def select(sc, take):
    for s in sc.sequence_editor.strips:
        s.select = False
    take.select = True
    sc.sequence_editor.active_strip = take


# Bar k starts at 11 + k * 57.5425 frames: 11, 68.54, 126.08, 183.63, 241.17, 298.71, 356.25,
# 413.80, 471.34 -> nearest frames:
BARS = {1: 11, 2: 69, 3: 126, 4: 184, 5: 241, 6: 299, 7: 356, 8: 414, 9: 471}


def test_bar_markers_on_the_nearest_frames_of_the_visible_bars(scene, tmp_path):
    take = add_take(scene, tmp_path, "bunny pop take1", 1)
    take.frame_final_start, take.frame_final_end = 120, 414  # bars 3 to 7 show
    select(scene, take)
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}
    assert markers(scene) == [(BARS[k], f"bar {k}") for k in range(3, 8)]

    take.frame_final_start, take.frame_final_end = START, 600  # untrimmed: every bar
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}  # again: replaced, none doubled
    assert markers(scene) == [(BARS[k], f"bar {k}") for k in range(1, 10)]


def test_only_the_takes_own_markers_are_replaced(scene, tmp_path):
    """User markers stay, even one named and placed like a bar marker, and so does a bar
    marker the user moved; another take's markers stay too."""
    editor = scene.sequence_editor
    scene.timeline_markers.new("intro", frame=30)
    scene.timeline_markers.new("bar 2", frame=BARS[2])  # the user's, before vbgm's
    take = add_take(scene, tmp_path, "a take1", 1, n_bars=3, duration_s=7.2)
    other = add_take(scene, tmp_path, "b take1", 2, tempo_bpm=150.0, n_bars=2, duration_s=3.2)
    select(scene, other)
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}
    others = [(START, "bar 1"), (START + 38, "bar 2")]  # 1.6 s bars: 38.36 frames
    select(scene, take)
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}
    mine = [(BARS[1], "bar 1"), (BARS[2], "bar 2"), (BARS[3], "bar 3")]
    assert markers(scene) == sorted([(30, "intro"), (BARS[2], "bar 2")] + others + mine)

    next(m for m in scene.timeline_markers if (m.frame, m.name) == (BARS[3], "bar 3")).frame = 100
    Path(take["vbgm_report"]).write_text(json.dumps({"tempo_bpm": 120.0, "n_bars": 4, "duration_s": 7.2}))
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}  # a new tempo: 2 s bars, 47.95 frames
    mine = [(START, "bar 1"), (START + 48, "bar 2"), (START + 96, "bar 3"), (START + 144, "bar 4")]
    assert markers(scene) == sorted([(30, "intro"), (BARS[2], "bar 2"), (100, "bar 3")] + others + mine)
    assert editor.strips["b take1"]["vbgm_bar_markers"] == json.dumps([[n, f] for f, n in others])


def test_bar_markers_refused_without_a_take_or_its_report(scene, tmp_path):
    old = add_take(scene, tmp_path, "old take1", 1, report=False)  # before takes kept a report
    select(scene, old)
    with pytest.raises(RuntimeError, match="'old take1' has no report"):
        bpy.ops.vbgm.add_bar_markers()
    gone = add_take(scene, tmp_path, "gone take1", 2)
    Path(gone["vbgm_report"]).unlink()
    select(scene, gone)
    with pytest.raises(RuntimeError, match="report of 'gone take1' is missing"):
        bpy.ops.vbgm.add_bar_markers()
    assert markers(scene) == []
    gone.select = False
    scene.sequence_editor.active_strip = None
    with pytest.raises(RuntimeError, match="poll"):  # no take selected: the button is off
        bpy.ops.vbgm.add_bar_markers()
