"""Edit lists (vbgm_core/video/edit.py): the format the Blender add-on writes for a whole
timeline, its analysis (cuts at strip boundaries, gaps calm, played speed) and its speech.

Runs with the main venv (the core); .venv-blender has no OpenCV and skips it. The add-on's
side (strips → edit list) is tests/test_blender_edit.py.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import vbgm_command, wav_duration_s

pytest.importorskip("cv2", reason="the core is not installed here (run with the main .venv)")

from vbgm_core.errors import InputError  # noqa: E402
from vbgm_core.audio.speech import edit_speech  # noqa: E402
from vbgm_core.video.edit import EditList, analyze_edit, boundaries  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BUNNY = REPO / "examples" / "media" / "bigbuckbunny.mp4"  # 25 fps, 5.28 s, in the repo
BIKES = SHARED / "videos" / "bikes.mp4"  # 25 fps, 10 s
TALKING = SHARED / "videos" / "talking.mp4"  # narration; true speech in talking.json


def needs_shared(*paths):
    for p in paths:
        if not p.is_file():
            pytest.skip(f"shared clip {p.name} not found at {p.parent} (../shared beside the checkout)")


def write_edit(path, segments, duration_s, fps=30):
    path.write_text(json.dumps({"vbgm_edit": 1, "duration_s": duration_s, "fps": fps,
                                "segments": segments}))
    return path


def seg(path, s0, s1, t0, t1=None, audio=True):
    d = {"path": str(path), "source_start_s": s0, "source_end_s": s1, "timeline_start_s": t0,
         "audio": audio}
    if t1 is not None:
        d["timeline_end_s"] = t1
    return d


def test_round_trip_defaults_and_relative_paths(tmp_path):
    (tmp_path / "clips").mkdir()
    clip = tmp_path / "clips" / "a.mp4"
    clip.write_bytes(BUNNY.read_bytes())
    src = write_edit(tmp_path / "edit.json", [seg("clips/a.mp4", 1.0, 3.0, 0.5),
                                              seg(clip, 0.0, 1.2, 3.0, 4.0, audio=False)], 5.0)
    edit = EditList.from_json(src)
    a, b = edit.segments
    assert a.path == clip and a.timeline_end_s == pytest.approx(2.5) and a.rate == 1.0
    assert b.rate == pytest.approx(1 / 1.2) and not b.audio
    assert b.to_timeline(0.6) == pytest.approx(3.5)
    assert boundaries(edit) == [0.5, 2.5, 3.0, 4.0]  # a gap's edges are boundaries too
    again = EditList.from_json(edit.to_json(tmp_path / "again.json"))
    assert again.segments == edit.segments and again.duration_s == 5.0


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable edit list"),
    ('{"duration_s": 2}', 'no "vbgm_edit" key'),
    ('{"vbgm_edit": 2, "duration_s": 2, "fps": 30, "segments": []}', "not a version"),
    ('{"vbgm_edit": 1, "duration_s": 2, "fps": 30, "segments": []}', "non-empty list"),
    ('{"vbgm_edit": 1, "duration_s": -1, "fps": 30, "segments": []}', "must be positive"),
    ('{"vbgm_edit": 1, "duration_s": 4, "fps": 30, "segments": [SEG(0, 2, 0), SEG(0, 2, 1)]}',
     "segment 2: starts at 1 s, before the previous segment ends"),
    ('{"vbgm_edit": 1, "duration_s": 1, "fps": 30, "segments": [SEG(0, 2, 0)]}',
     "segment 1: ends at 2 s, after the edit's duration_s"),
    ('{"vbgm_edit": 1, "duration_s": 4, "fps": 30, "segments": [SEG(2, 1, 0)]}',
     "source range 2-1 s is empty"),
    ('{"vbgm_edit": 1, "duration_s": 4, "fps": 30, "segments": [{"path": "nowhere.mp4", '
     '"source_start_s": 0, "source_end_s": 1, "timeline_start_s": 0}]}', "nowhere.mp4: no such file"),
    ('{"vbgm_edit": 1, "duration_s": 4, "fps": 30, "segments": [{"path": "BUNNY", '
     '"source_start_s": "0", "source_end_s": 1, "timeline_start_s": 0}]}', "source_start_s must be a number"),
])
def test_bad_edit_lists_name_the_file_in_one_line(tmp_path, content, message):
    def seg_json(match):
        s0, s1, t0 = match.split(",")
        return json.dumps(seg(BUNNY, float(s0), float(s1), float(t0)))

    import re

    content = re.sub(r"SEG\(([^)]*)\)", lambda m: seg_json(m.group(1)), content)
    path = tmp_path / "bad.json"
    path.write_text(content.replace('"BUNNY"', json.dumps(str(BUNNY))))
    with pytest.raises(InputError) as err:
        EditList.from_json(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_strip_boundaries_are_cuts_and_gaps_are_calm(tmp_path):
    """Three strips from two clips (one a split of the same shot: no cut in the picture), a
    gap of black longer than a bar, then a clip played 1.2x fast."""
    needs_shared(BIKES)
    edit = EditList.from_json(write_edit(tmp_path / "e.json", [
        seg(BIKES, 2.0, 4.0, 0.0), seg(BIKES, 4.0, 5.0, 2.0), seg(BUNNY, 1.0, 3.0, 3.0),
        seg(BUNNY, 3.0, 4.2, 9.5, 10.5)], 10.5))
    rhythm = analyze_edit(edit)
    assert rhythm.duration_s == 10.5 and rhythm.source == str(tmp_path / "e.json")
    expected = [2.0, 3.0, 5.0, 9.5]
    assert boundaries(edit) == expected
    for b in expected:  # each boundary is a cut, and a maximal visual beat
        assert min(abs(c - b) for c in rhythm.cuts) <= 1.5 / 25, (b, rhythm.cuts)
        assert any(v.cut and abs(v.time_s - b) <= 1.5 / 25 for v in rhythm.visual_beats), b
    # The split at 2.0 s shows the same shot on both sides: a cut only because it is a boundary.
    assert not any(1.9 < c < 2.1 for c in analyze_bikes_alone(tmp_path).cuts)
    # A bar wholly inside the gap (5.0-9.5 s) is still.
    gap_bars = [b for b in rhythm.bars if b.start_s >= 5.0 and b.start_s + rhythm.bar_seconds <= 9.5]
    assert gap_bars and all(b.speed == pytest.approx(0.0, abs=1e-3) for b in gap_bars)
    assert max(b.density for b in gap_bars) < max(b.density for b in rhythm.bars)
    times = [t for t, _ in rhythm.motion]
    assert times == sorted(times) and times[-1] < 10.5


def analyze_bikes_alone(tmp_path):
    return analyze_edit(EditList.from_json(write_edit(tmp_path / "b.json", [seg(BIKES, 2.0, 5.0, 0.0)], 3.0)))


def test_a_segment_played_slower_moves_slower(tmp_path):
    """The same source range stretched over twice the timeline: half the motion per second,
    and the same analysis twice is the same bytes."""
    normal = write_edit(tmp_path / "n.json", [seg(BUNNY, 0.0, 4.0, 0.0)], 4.0)
    slow = write_edit(tmp_path / "s.json", [seg(BUNNY, 0.0, 4.0, 0.0, 8.0)], 8.0)
    r1, r2 = analyze_edit(EditList.from_json(normal)), analyze_edit(EditList.from_json(slow))
    f1 = np.mean([f for _, f in r1.motion[1:]])
    f2 = np.mean([f for _, f in r2.motion[1:]])
    assert f2 / f1 == pytest.approx(0.5, rel=0.05)
    assert r2.motion[-1][0] == pytest.approx(2 * r1.motion[-1][0], abs=0.01)
    a, b = r1.to_json(tmp_path / "r1.json"), analyze_edit(EditList.from_json(normal)).to_json(tmp_path / "r2.json")
    assert a.read_bytes() == b.read_bytes()


def test_edit_speech_in_timeline_time_from_heard_segments_only(tmp_path):
    """talking.mp4 (speech at 2.0-7.65 s and 11.5-16.45 s) cut into the timeline twice, a
    silent clip between, and a third piece of it whose sound is off."""
    needs_shared(TALKING)
    truth = json.loads(TALKING.with_suffix(".json").read_text())["speech"]
    edit = EditList.from_json(write_edit(tmp_path / "t.json", [
        seg(TALKING, 1.0, 9.0, 0.0), seg(BUNNY, 0.0, 2.0, 8.0, audio=False),
        seg(TALKING, 11.0, 17.0, 10.0), seg(TALKING, 2.0, 6.0, 16.0, audio=False)], 20.0))
    found = edit_speech(edit)
    from vbgm_core.audio.speech import segments_iou
    expected = [(truth[0]["start_s"] - 1.0, truth[0]["end_s"] - 1.0),
                (truth[1]["start_s"] - 1.0, truth[1]["end_s"] - 1.0)]
    assert segments_iou(found, expected) >= 0.8, found
    assert all(e <= 16.0 + 1e-6 for _, e in found)  # nothing from the muted piece
    assert found == sorted(found) and all(s < e for s, e in found)


def test_cli_scores_an_edit_list_and_refuses_to_mux_it(tmp_path):
    vbgm = vbgm_command()
    edit = write_edit(tmp_path / "e.json", [seg(BUNNY, 0.0, 1.5, 0.0), seg(BUNNY, 3.0, 4.0, 2.0)], 3.5)
    wav, midi, report = tmp_path / "m.wav", tmp_path / "m.mid", tmp_path / "r.json"
    done = subprocess.run([vbgm, "score", str(edit), "--wav", str(wav), "--midi", str(midi),
                           "--report", str(report), "--seed", "2", "--progress", "none"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert wav_duration_s(wav) == pytest.approx(3.5, abs=1 / 44100)
    r = json.loads(report.read_text())
    assert r["duration_s"] == 3.5 and r["video"] == str(edit)
    refused = subprocess.run([vbgm, "score", str(edit), "-o", str(tmp_path / "x.mp4"), "--progress", "none"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "e.json" in lines[0] and "-o" in lines[0]
    assert not (tmp_path / "x.mp4").exists()
