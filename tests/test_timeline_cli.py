"""`vbgm score TIMELINE -o SCORED` end to end on every real timeline of ../shared/timelines
(stand-in media made here, as tests/test_timeline.py makes them): the scored timeline re-reads
with OpenTimelineIO, the editor's own tracks are untouched, the music lasts exactly the edit,
a marker sits on every bar line, the report's cuts are the edit points; and the reliability
rules for a timeline (never replaced without --overwrite, never the output of itself, one line
for what cannot be read)."""
# ruff: noqa: F811 (pytest fixtures as arguments redefine the imported fixture names)

import json
import subprocess
import wave

import pytest
from conftest import vbgm_command

# The stand-in media fixtures of test_timeline.py, shared (pytest finds imported fixtures).
from test_timeline import EXPECTED, TIMELINES, media, timelines, tools  # noqa: F401

from vbgm_core.timeline import load_timeline

otio = pytest.importorskip("opentimelineio", reason="the timeline extra is not installed")


def vbgm(*args):
    return subprocess.run([vbgm_command(), *map(str, args), "--progress", "none"],
                          capture_output=True, text=True)


def read(path):
    timeline = otio.adapters.read_from_file(str(path))
    if isinstance(timeline, otio.schema.SerializableCollection):   # FCPXML: a library
        timeline = next(iter(timeline.find_children(descended_from_type=otio.schema.Timeline)))
    return timeline


def tracks_json(timeline, count):
    return [otio.adapters.write_to_string(t, "otio_json") for t in list(timeline.tracks)[:count]]


def score_and_check(timeline, media_dir, model, tmp_path, fps, frames):
    """``vbgm score TIMELINE -o …_scored.otio``, and what holds for every timeline: the report
    and the WAV last exactly the edit, the scored file re-reads with the editor's tracks
    unchanged (as vbgm reads them: an EDL's rate comes from its media and timecodes) and one
    new audio track of one clip as long. Returns (report, the score clip, the output path)."""
    out = tmp_path / f"{timeline.stem}_scored.otio"
    done = vbgm("score", timeline, "-o", out, "--media-dir", media_dir, "--model", model,
                "--seed", "1")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    duration = frames / fps
    assert report["source"] == "timeline" and report["duration_s"] == pytest.approx(duration)
    with wave.open(str(out.with_suffix(".wav"))) as w:   # the music lasts exactly the edit
        assert abs(w.getnframes() - duration * w.getframerate()) <= 1
    assert out.with_suffix(".mid").is_file()
    original = load_timeline(timeline, media_dirs=[media_dir]).timeline
    scored = read(out)
    n = len(original.tracks)
    assert len(scored.tracks) == n + 1
    assert tracks_json(scored, n) == tracks_json(original, n)   # the editor's cut untouched
    track = scored.tracks[n]
    assert track.name == "vbgm score" and track.kind == otio.schema.TrackKind.Audio
    (clip,) = list(track)
    assert clip.duration().to_seconds() == pytest.approx(duration, abs=0.5 / fps)
    return report, clip, out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_shared_timeline_scores_into_a_scored_timeline(name, media, tiny_model, tmp_path):
    fps, frames, expected = EXPECTED[name]
    report, clip, out = score_and_check(TIMELINES / name, media(name), tiny_model, tmp_path,
                                        fps, frames)
    assert clip.media_reference.target_url.endswith(out.with_suffix(".wav").name)
    marks = sorted(m.marked_range.start_time.to_seconds() for m in clip.markers)
    assert marks == pytest.approx(report["bar_times_s"], abs=0.5 / fps)   # bar lines, to a frame
    assert [m.name for m in sorted(clip.markers, key=lambda m: m.marked_range.start_time)] == \
        [f"bar {k + 1}" for k in range(len(marks))]
    edges = sorted({t for e in expected for t in e[1:3] if 0 < t < frames})
    for edge in edges:   # every edit point is one of the cuts the music took
        assert min(abs(c * fps - edge) for c in report["cuts_s"]) <= 1.0, edge


def test_premiere_xml_round_trips_as_xml(media, tiny_model, tmp_path):
    name = "premiere_example.xml"
    out = tmp_path / "cut_scored.xml"
    done = vbgm("score", TIMELINES / name, "-o", out, "--media-dir", media(name),
                "--model", tiny_model, "--wav", tmp_path / "music.wav")
    assert done.returncode == 0, done.stderr
    scored, original = read(out), read(TIMELINES / name)
    video = [t for t in scored.tracks if t.kind == otio.schema.TrackKind.Video]
    assert [c.name for t in video for c in t] == \
        [c.name for t in original.tracks if t.kind == otio.schema.TrackKind.Video for c in t]
    music = [c for t in scored.tracks for c in t if isinstance(c, otio.schema.Clip)
             and (getattr(c.media_reference, "target_url", "") or "").endswith("music.wav")]
    assert len(music) == 1 and len(music[0].markers) > 0


def test_batch_scores_a_timeline_beside_a_video(media, tiny_model, sample_clip, tmp_path):
    name = "simple_cut.otio"
    done = vbgm("batch", TIMELINES / name, sample_clip, "-o", tmp_path / "out", "--media-dir",
                media(name), "--model", tiny_model)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = {r["video"].rpartition("/")[2]: r for r in summary["clips"]}
    outputs = rows[name]["outputs"]
    assert set(outputs) == {"timeline", "wav", "midi", "report"}
    scored = read(outputs["timeline"])
    # the scored timeline refers to the WAV where it landed, not to the batch's staging place
    assert scored.tracks[-1][0].media_reference.target_url.endswith(outputs["wav"])
    assert set(rows[sample_clip.name]["outputs"]) == {"mp4", "midi", "report"}


def test_missing_media_are_all_named_in_one_line(tmp_path):
    if not TIMELINES.is_dir():
        pytest.skip("needs the shared timelines")
    done = vbgm("score", TIMELINES / "premiere_example.xml", "-o", tmp_path / "s.otio")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    for clip in ("sc01_sh010_anim.mov", "sc01_sh020_anim.mov", "sc01_sh030_anim.mov",
                 "sc01_master_layerA_sh030_temp.mov"):
        assert clip in done.stderr
    assert not list(tmp_path.iterdir())   # nothing written


def test_a_timeline_is_never_replaced_nor_its_own_output(media, tiny_model, tmp_path):
    name = "simple_cut.otio"
    copy = tmp_path / name
    copy.write_bytes((TIMELINES / name).read_bytes())
    before = copy.read_bytes()
    done = vbgm("score", copy, "-o", copy, "--media-dir", media(name), "--model", tiny_model,
                "--overwrite")
    assert done.returncode == 2 and "input" in done.stderr and copy.read_bytes() == before
    taken = tmp_path / "taken.otio"
    taken.write_text("mine")
    done = vbgm("score", copy, "-o", taken, "--media-dir", media(name), "--model", tiny_model)
    assert done.returncode == 2 and "exists" in done.stderr and taken.read_text() == "mine"


@pytest.mark.parametrize("suffix, text", [(".xml", "<xmeml><sequence>"),
                                          (".edl", "TITLE: x\n001  AX V C 00:00:00:00\n")])
def test_a_malformed_timeline_is_one_line(suffix, text, tmp_path):
    bad = tmp_path / f"bad{suffix}"
    bad.write_text(text)
    done = vbgm("score", bad, "-o", tmp_path / "s.otio")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and str(bad) in done.stderr
