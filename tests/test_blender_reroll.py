"""Re-roll from here in Blender (real bpy, the real `vbgm` CLI): a take kept up to the playhead
(rounded up to its next bar line) bit for bit, the rest composed anew with the next seed, as a
new take in the old take's place; the old take muted.

Run with .venv-blender. The MIDI files are read in the core's Python (`vbgm`'s interpreter,
which has miditoolkit; the bpy venv has no MIDI reader).
"""

import json
import math
import subprocess
from pathlib import Path

import pytest
from conftest import vbgm_command, wav_duration_s

bpy = pytest.importorskip("bpy", reason="bpy not installed: run with .venv-blender (scripts/setup_blender_venv.sh)")

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "media" / "bigbuckbunny.mp4"  # 25 fps, 132 frames: the bundled clip
FPS = 25
START = 11  # the movie strip's first frame
BPM = 180.0  # a fixed tempo: bars of 1.33 s, four in the take (the last one 1.28 s)
BAR_S = 4 * 60.0 / BPM


@pytest.fixture(scope="module")
def addon(registered_addon):
    yield registered_addon


@pytest.fixture
def scene(addon, tmp_path):
    """A saved file with the bundled clip as one movie strip (5.28 s), selected and active; a
    fixed tempo, so that the bar lines are known."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "edit.blend"))
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = FPS, 1.0
    sc.frame_start, sc.frame_end = 1, 300
    movie = sc.sequence_editor_create().strips.new_movie("bunny", str(CLIP), 2, START)
    movie.select = True
    sc.sequence_editor.active_strip = movie
    bpy.ops.vbgm.refresh_choices()
    settings = sc.vbgm
    settings.genre = addon.properties._choices["genres"][0][0]
    settings.seed, settings.tempo_mode, settings.tempo_bpm, settings.music_gain_db = 4, "BPM", BPM, -3.0
    return sc


def takes(sc):
    return sorted((s for s in sc.sequence_editor.strips if s.type == "SOUND" and "vbgm_midi" in s),
                  key=lambda s: s["vbgm_seed"])


def midi_notes(path):
    """The notes of a MIDI file, read by miditoolkit in the core's Python: tempo, ticks per
    beat and ``[track, is_drum, pitch, start, end, velocity]`` sorted."""
    python = Path(vbgm_command()).parent / "python"
    code = ("import json, sys, miditoolkit\n"
            "m = miditoolkit.MidiFile(sys.argv[1])\n"
            "notes = sorted([i.name, i.is_drum, n.pitch, n.start, n.end, n.velocity]\n"
            "               for i in m.instruments for n in i.notes)\n"
            "print(json.dumps({'tempo': m.tempo_changes[0].tempo, 'tpb': m.ticks_per_beat,\n"
            "                  'notes': notes}))")
    done = subprocess.run([str(python), "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def split(midi, kept_s):
    """(notes starting before ``kept_s``, notes from it on)."""
    boundary = round(kept_s / (60.0 / midi["tempo"]) * midi["tpb"])
    return ([n for n in midi["notes"] if n[3] < boundary], [n for n in midi["notes"] if n[3] >= boundary])


def reroll_at(sc, take, seconds):
    """Re-roll ``take`` (made active) from the playhead at ``seconds`` into its music."""
    sc.frame_current = int(round(take.frame_start + seconds * FPS))
    sc.sequence_editor.active_strip = take
    return bpy.ops.vbgm.reroll_score()


def test_reroll_keeps_the_take_before_the_playhead(scene):
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (first,) = takes(scene)
    place = (first.frame_start, first.frame_final_start, first.frame_final_end, first.frame_final_duration)
    assert json.loads(first["vbgm_options"])["tempo"] == BPM and first["vbgm_seed"] == 4
    # The take keeps the core's report beside its music; Add Bar Markers reads its bars: 1.33 s
    # = 33.33 frames from the take's first frame, each on the nearest frame (issue 25).
    report = Path(first["vbgm_report"])
    assert report.parent == Path(first["vbgm_midi"]).parent and report.name.endswith("_take1.report.json")
    assert json.loads(report.read_text())["tempo_bpm"] == pytest.approx(BPM)
    scene.sequence_editor.active_strip = first
    assert bpy.ops.vbgm.add_bar_markers() == {"FINISHED"}
    assert sorted((m.frame, m.name) for m in scene.timeline_markers) == \
        [(START, "bar 1"), (START + 33, "bar 2"), (START + 67, "bar 3"), (START + 100, "bar 4")]

    playhead_s = 2.2  # in the second bar: bars 1 and 2 (0-2.67 s) are kept
    assert reroll_at(scene, first, playhead_s) == {"FINISHED"}
    first, second = takes(scene)
    # A new take in the old one's place, the old one muted; the next seed.
    assert (second.frame_start, second.frame_final_start, second.frame_final_end,
            second.frame_final_duration) == place
    assert first.mute and not second.mute and second.channel != first.channel
    assert second["vbgm_seed"] == 5 and "take2" in second.name and second.name.startswith("bunny ")
    assert Path(second["vbgm_report"]).is_file() and second["vbgm_report"] != first["vbgm_report"]
    assert second.volume == pytest.approx(10 ** (-3 / 20))  # the take's own Music Gain
    wav1, wav2 = (Path(bpy.path.abspath(s.sound.filepath)) for s in (first, second))
    assert wav2.parent == wav1.parent == Path(bpy.data.filepath).parent / "vbgm_scores"
    assert wav_duration_s(wav2) == pytest.approx(wav_duration_s(wav1), abs=1e-6)
    # The same edit list, kept beside the new take.
    assert Path(second["vbgm_edit"]) != Path(first["vbgm_edit"])
    assert Path(second["vbgm_edit"]).read_text() == Path(first["vbgm_edit"]).read_text()

    old, new = midi_notes(first["vbgm_midi"]), midi_notes(second["vbgm_midi"])
    assert new["tempo"] == old["tempo"] == pytest.approx(BPM, rel=1e-5)  # MIDI: µs per beat
    kept_s = math.ceil(playhead_s / BAR_S) * BAR_S
    old_kept, old_rest = split(old, kept_s)
    new_kept, new_rest = split(new, kept_s)
    assert old_kept and new_kept == old_kept  # bit for bit before the bar line
    assert new_rest and new_rest != old_rest  # composed anew after it

    # A re-roll of the re-roll, trimmed: the new take keeps the handles; the seed is new.
    second.frame_final_start, second.frame_final_end = place[1] + 10, place[2] - 5
    assert reroll_at(scene, second, 1.0) == {"FINISHED"}
    first, second, third = takes(scene)
    assert (third.frame_start, third.frame_final_start, third.frame_final_end) == \
        (place[0], place[1] + 10, place[2] - 5)
    assert second.mute and first.mute and not third.mute and third["vbgm_seed"] == 6
    kept, rest = split(midi_notes(third["vbgm_midi"]), BAR_S)
    assert kept == split(new, BAR_S)[0] and rest != split(new, BAR_S)[1]


def test_reroll_refuses_outside_the_take_and_without_one(scene):
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (take,) = takes(scene)
    folder = Path(take["vbgm_midi"]).parent
    files = sorted(folder.iterdir())
    with pytest.raises(RuntimeError, match=r"outside '.*take1'"):
        reroll_at(scene, take, -0.5)
    with pytest.raises(RuntimeError, match="outside"):
        reroll_at(scene, take, take.frame_final_duration / FPS)  # the first frame after it
    with pytest.raises(RuntimeError, match="before its first bar"):
        reroll_at(scene, take, 0.0)
    with pytest.raises(RuntimeError, match="keeps the whole take"):  # the core says so
        reroll_at(scene, take, 4.5)  # in the last bar: nothing left to re-roll
    assert takes(scene) == [take] and not take.mute
    assert sorted(folder.iterdir()) == files  # no partial take left behind

    Path(take["vbgm_midi"]).rename(folder / "moved.mid")
    with pytest.raises(RuntimeError, match="MIDI of '.*' is missing"):
        reroll_at(scene, take, 2.5)

    scene.sequence_editor.active_strip = scene.sequence_editor.strips["bunny"]
    take.select = False
    with pytest.raises(RuntimeError, match="poll"):  # no take selected: the button is off
        bpy.ops.vbgm.reroll_score()
