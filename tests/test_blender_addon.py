"""The Blender add-on with real bpy (Blender as a Python module) and the real `vbgm` CLI.

bpy 5.0.1 pins numpy<2, so it lives in its own venv:
    scripts/setup_blender_venv.sh && .venv-blender/bin/python -m pytest tests/test_blender_addon.py
The main venv has no bpy and skips this file.
"""

import shutil
import sys
from pathlib import Path

import pytest
from conftest import vbgm_command, wav_duration_s

bpy = pytest.importorskip("bpy", reason="bpy not installed: run with .venv-blender (scripts/setup_blender_venv.sh)")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLIP = SHARED / "videos" / "bikes.mp4"  # 25 fps, 10 s (250 frames)
ADDON = "blender_vse"
FPS = 25
MOVIE_CHANNEL = 2
# Trimmed: the strip starts at frame 11; 50 frames cut at the head and 150 at the tail leave
# frames 61..110 visible = 2 s of the source, from 2 s to 4 s.
MOVIE_START, TRIM_HEAD, TRIM_TAIL = 11, 50, 150
VISIBLE_START, VISIBLE_FRAMES = MOVIE_START + TRIM_HEAD, 250 - TRIM_HEAD - TRIM_TAIL


@pytest.fixture(scope="module")
def addon():
    """The add-on registered as Blender does (an add-on entry for its preferences)."""
    if not CLIP.is_file():
        pytest.skip(f"shared clips not found at {SHARED} (../shared beside the checkout)")
    vbgm = vbgm_command()
    sys.path.insert(0, str(REPO / "plugins"))
    import blender_vse

    blender_vse.register()
    entry = bpy.context.preferences.addons.new()
    entry.module = ADDON
    entry.preferences.vbgm_path = vbgm
    yield blender_vse
    blender_vse.unregister()
    bpy.context.preferences.addons.remove(entry)
    sys.path.remove(str(REPO / "plugins"))
    # Unregistered cleanly: nothing of ours is left on Blender's types.
    assert not hasattr(bpy.types.Scene, "vbgm") and not hasattr(bpy.types.WindowManager, "vbgm_job")
    for name in ("VBGM_PT_score", "VBGM_OT_generate_score", "VBGM_OT_add_bar_markers", "VBGM_PG_settings",
                 "VBGM_AP_preferences"):
        assert not hasattr(bpy.types, name), name


@pytest.fixture
def scene(addon, tmp_path):
    """An empty file saved in tmp_path, holding the trimmed movie strip (selected, active)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "edit.blend"))
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = FPS, 1.0
    sc.frame_start, sc.frame_end = 1, 300
    editor = sc.sequence_editor_create()
    movie = editor.strips.new_movie("bikes", str(CLIP), MOVIE_CHANNEL, MOVIE_START)
    movie.frame_offset_start, movie.frame_offset_end = TRIM_HEAD, TRIM_TAIL
    movie.select = True
    editor.active_strip = movie
    bpy.ops.vbgm.refresh_choices()
    sc.vbgm.genre = addon.properties._choices["genres"][0][0]
    sc.vbgm.seed = 5
    return sc


def sound_strips(sc):
    return sorted((s for s in sc.sequence_editor.strips if s.type == "SOUND"), key=lambda s: s.name)


def check_take(sc, strip, take):
    assert strip.frame_final_start == VISIBLE_START
    assert abs(strip.frame_final_duration - VISIBLE_FRAMES) <= 1
    assert abs(strip.frame_duration - VISIBLE_FRAMES) <= 1  # the audio itself, as Blender reads it
    assert abs(strip.channel - MOVIE_CHANNEL) == 1 or take > 1
    wav = Path(bpy.path.abspath(strip.sound.filepath))
    assert wav.parent == Path(bpy.data.filepath).parent / "vbgm_scores"
    assert wav_duration_s(wav) == pytest.approx(VISIBLE_FRAMES / FPS, abs=1.5 / FPS)
    assert Path(strip["vbgm_midi"]).read_bytes()[:4] == b"MThd"
    assert f"take{take}" in strip.name and sc.vbgm.genre in strip.name and "bikes" in strip.name
    return wav


def test_generate_two_takes_and_reopen(scene, tmp_path):
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (first,) = sound_strips(scene)
    wav1 = check_take(scene, first, 1)
    assert first.channel == MOVIE_CHANNEL - 1  # under the movie
    assert first.sound.filepath.startswith("//")  # relative to the .blend

    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    first, second = sound_strips(scene)
    wav2 = check_take(scene, second, 2)
    assert wav2 != wav1 and wav1.is_file()  # a new take, the old one kept (muted)
    assert first.mute and not second.mute
    assert second.channel not in (first.channel, MOVIE_CHANNEL)

    def describe(strips):
        return [(s.name, s.channel, s.frame_final_start, s.frame_final_duration, s.mute) for s in strips]

    saved = describe((first, second))
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "edit.blend"))
    reopened = sound_strips(bpy.context.scene)
    assert describe(reopened) == saved
    for strip, wav in zip(reopened, (wav1, wav2)):
        assert Path(bpy.path.abspath(strip.sound.filepath)) == wav


def test_no_movie_strip_selected_reports_and_changes_nothing(scene):
    for s in scene.sequence_editor.strips:
        s.select = False
    before = [(s.name, s.type, s.channel) for s in scene.sequence_editor.strips]
    folder = Path(bpy.data.filepath).parent / "vbgm_scores"
    with pytest.raises(RuntimeError, match="No movie or meta strip selected"):
        bpy.ops.vbgm.generate_score()
    assert [(s.name, s.type, s.channel) for s in scene.sequence_editor.strips] == before
    assert not folder.exists() or not any(folder.iterdir())


def test_missing_movie_file_is_reported(scene, tmp_path):
    copy = tmp_path / "gone.mp4"
    shutil.copy(CLIP, copy)
    movie = scene.sequence_editor.strips.new_movie("gone", str(copy), 5, 1)
    scene.sequence_editor.active_strip = movie
    copy.unlink()
    with pytest.raises(RuntimeError, match="gone.mp4"):
        bpy.ops.vbgm.generate_score()
    assert sound_strips(scene) == []


def test_manifest_passes_blenders_extension_validator():
    import subprocess

    validator = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    done = subprocess.run([sys.executable, str(validator), "validate", str(REPO / "plugins" / "blender_vse")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Success" in done.stdout, done.stdout + done.stderr
