"""`vbgm score` on real timelines from editors and exporter versions that ../shared/timelines
lacks (tests/fixtures/timelines: Premiere's disabled clips, Nucoda's and a conform EDL, an
OpenTimelineIO file with fractional frames, Final Cut Pro 10.6.6+ FCPXML 1.11), against
stand-in media made here as tests/test_timeline.py makes them.

Each one that vbgm can score: exit 0, the scored timeline re-reads, the editor's tracks are
unchanged, the WAV lasts the edit (to a sample), the report's cuts are the edit points (to a
frame). Each one it cannot: exit 2 and one line naming the file and the reason, nothing
written. Expected numbers are worked out by hand from each file's own (see the comments)."""
# ruff: noqa: F811 (pytest fixtures as arguments redefine the imported fixture names)

import subprocess

import pytest
from conftest import FIXTURES

# The stand-in clip maker and the tools fixture of test_timeline.py, the CLI helpers of
# test_timeline_cli.py (pytest finds imported fixtures).
from test_timeline import make_clip, media_folders, tools  # noqa: F401
from test_timeline_cli import score_and_check, vbgm

from vbgm_core.errors import InputError
from vbgm_core.timeline import load_timeline

otio = pytest.importorskip("opentimelineio", reason="the timeline extra is not installed")

UNSEEN = FIXTURES / "timelines"
HOUR = "01:00:00:00"

# Stand-in media: (file name, frames, fps, start timecode or None). A file without timecode
# starts at 0 on the timeline's clock; lengths are those the timelines give, else long enough.
MEDIA = {
    # Premiere names two trimmed copies "source.mp4" (14:03 for 81 frames, 17:09 for 96): one
    # file from 14:03 holds both
    "premiere_enable_property.xml": [("source.mp4", 177, 25, "00:00:14:03"),
                                     ("source3.mp4", 43, 25, "00:00:21:05"),
                                     ("source4.mp4", 36, 25, "00:00:22:23")],
    # FROM FILE S:\path\to\ZZ100_501.take_1.0001.exr: relinked by name, any extension
    "nucoda_example.edl": [("ZZ100_501.take_1.0001.mov", 144, 24, HOUR),
                           ("ZZ100_502A.take_2.0101.mov", 216, 24, HOUR)],
    # clip names only (FROM CLIP NAME), sources at the cameras' time of day; 102C-2-B long
    # enough for its M2 (31.7 fps: 33 source frames over 25)
    "ISSUE_14_conform_edl_issue_01.edl": [("13A-1-C.mov", 96, 24, "09:33:31:00"),
                                          ("111B-1-B.mov", 48, 24, "21:48:54:00"),
                                          ("102C-2-B.mov", 48, 24, "13:48:57:00")],
    # E:/MM-Test/30sek-749f.wmv: 30 s, 749 frames
    "multiinstance.otio": [("30sek-749f.wmv", 749, 25, None)],
    # FCPXML 1.11 keeps the media path in <media-rep>, which OpenTimelineIO's reader does not
    # read: the clips are found by their names (asset durations 142.04 s and 205.8 s)
    "Keywords.fcpxml": [("Nature Makes You Happy.mp4", 3551, 25, None),
                        ("Is This The Land of Fire or Ice.mp4", 5145, 25, None)],
    "SyncClip.fcpxml": [("TestVideo.m4v", 738, 25, None)],   # + TestAudio.wav, sound only
}

# What vbgm must make of each: (fps, frames, edit points), in frames of the timeline's rate.
EXPECTED = {
    # V1: source.mp4 0-81, disabled 81-177 (V2's source.mp4 is seen), source3.mp4 177-220,
    # disabled 220-256 (black to the end); V3's clip is disabled
    "premiere_enable_property.xml": (25, 256, [81, 177, 220]),
    # record 00:59:53:11-00:59:56:20: 31 + 50 frames
    "nucoda_example.edl": (24, 81, [31]),
    # record 01:00:06:20-01:01:42:14: 50 frames, a gap to 01:01:34:06 (2098), 17 frames,
    # a gap to 01:01:41:13 (2273), 25 frames
    "ISSUE_14_conform_edl_issue_01.edl": (24, 2298, [50, 2098, 2115, 2273]),
    # two pieces of one file: 483.075 + 266.333 frames
    "multiinstance.otio": (25, 749.408, [483.075]),
    # sequence duration 101376/12800 s; clip offsets 9216, 36864, 56320, 69632, 94720 /12800 s
    "Keywords.fcpxml": (25, 198, [18, 72, 110, 136, 185]),
    # sequence 295200/10000 s from tcStart 3600 s: one sync clip, no cut
    "SyncClip.fcpxml": (25, 738, []),
}

# What vbgm cannot score: the reason its one line gives.
REFUSED = {
    # read at its exact rate (30000/1001) now, but two clips have a <timeMap> (a speed ramp),
    # which the reader ignores: test_fcpxml_ntsc_fixture_reads_at_its_exact_rate reads the rest
    "29.97d.fcpxml": 'holds retimed clips ("TestVideo"), which OpenTimelineIO\'s FCPXML reader '
                     "plays at normal speed",
    "CompoundClips.fcpxml": "FCPXML reader cannot read its generators (Clouds)",
}


def test_every_unseen_timeline_is_tested():
    present = {p.name for p in UNSEEN.iterdir() if p.suffix in (".xml", ".edl", ".otio",
                                                                   ".fcpxml")}
    assert present == set(EXPECTED) | set(REFUSED)


def _sync_sound(name, folder):
    if name == "SyncClip.fcpxml":   # its synced sound: 114688/22050 s of WAV
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "sine=frequency=440:sample_rate=22050", "-t", "5.2011",
                        str(folder / "TestAudio.wav")], check=True)


@pytest.fixture(scope="module")
def unseen_media(tools, tmp_path_factory):
    """``unseen_media(timeline name)`` → a folder of its stand-in media (made once)."""
    return media_folders(tmp_path_factory, MEDIA, _sync_sound)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unseen_timeline_scores_like_the_shared_ones(name, unseen_media, tiny_model, tmp_path):
    fps, frames, edges = EXPECTED[name]
    report = score_and_check(UNSEEN / name, unseen_media(name), tiny_model, tmp_path, fps,
                             frames)[0]
    # every edit point is a cut the music took, to a frame, and there is no other
    assert len(report["cuts_s"]) == len(edges)
    for edge in edges:
        assert min(abs(c * fps - edge) for c in report["cuts_s"]) <= 1.0, edge


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_reader_would_misread_is_one_clear_line(name, tmp_path):
    out = tmp_path / "out" / "scored.otio"
    out.parent.mkdir()
    done = vbgm("score", UNSEEN / name, "-o", out)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert str(UNSEEN / name) in done.stderr and REFUSED[name] in done.stderr
    assert "Traceback" not in done.stderr and not list(out.parent.iterdir())


def test_fcpxml_start_timecode_is_not_a_gap(unseen_media):
    """FCPXML 1.11 from a project starting at 01:00:00:00: OpenTimelineIO's reader puts its
    clips an hour in, after a gap; vbgm takes the gap off and keeps the hour as the start."""
    name = "SyncClip.fcpxml"
    raw = otio.adapters.read_from_file(str(UNSEEN / name))[0]
    assert raw.tracks.duration().to_seconds() == pytest.approx(3600 + 29.52)   # the reader's
    loaded = load_timeline(UNSEEN / name, media_dirs=[unseen_media(name)])
    assert loaded.duration_s == pytest.approx(29.52) and loaded.fps == 25
    assert loaded.timeline.global_start_time == otio.opentime.RationalTime(90000, 25)
    # the clips are the reader's, untouched; only the lead-in went
    assert [(c.name, c.source_range) for c in loaded.timeline.find_clips()] == \
        [(c.name, c.source_range) for c in raw.find_clips()]
    (segment,) = loaded.edit.segments
    assert segment.path.name == "TestVideo.m4v" and segment.timeline_start_s == 0
    # the synced sound (a connected clip, which the reader places from 0) is heard from 0
    (sound,) = loaded.edit.sounds
    assert sound.path.name == "TestAudio.wav" and sound.timeline_start_s == 0


def test_fcpxml_length_the_reader_misses_is_one_clear_line(tools, tmp_path):
    """A project that the reader reads shorter or longer than it lasts (it leaves out titles,
    misplaces some connected clips...) is refused: the length read is checked against the
    project's own. Here the project says it lasts 10 s more than its clips."""
    text = (UNSEEN / "Keywords.fcpxml").read_text()
    assert text.count('duration="101376/12800s"') == 1
    wrong = tmp_path / "wrong.fcpxml"
    wrong.write_text(text.replace('duration="101376/12800s"', 'duration="229376/12800s"'))
    with pytest.raises(InputError) as err:
        load_timeline(wrong)
    assert str(err.value).startswith(f"{wrong}: OpenTimelineIO's FCPXML reader reads 7.92 s of "
                                     'the project "Marker Data Demo_V10", which lasts 17.92 s')
    assert "\n" not in str(err.value)


def test_fcpxml_multicam_is_one_clear_line(tmp_path):
    """The reader leaves multicam clips out (their picture would be black): refused."""
    text = (UNSEEN / "Keywords.fcpxml").read_text()
    multicam = tmp_path / "multicam.fcpxml"
    multicam.write_text(text.replace("<spine>", '<spine><mc-clip ref="r2" offset="0s" '
                                     'name="MC" duration="1s"/>', 1))
    with pytest.raises(InputError, match=r"multicam.fcpxml: holds multicam clips, which "
                                         r"OpenTimelineIO's FCPXML reader leaves out") as err:
        load_timeline(multicam)
    assert "\n" not in str(err.value)


# A Final Cut project at 29.97 fps (frameDuration 1001/30000 s): two clips of one asset, 150
# frames from 0 and 90 frames (from source frame 60) at 150 frames: 240 frames, 8.008 s.
NTSC_PROJECT = """<?xml version="1.0" encoding="UTF-8"?>
<fcpxml version="1.11"><resources>
<format id="r1" name="FFVideoFormat1080p2997" frameDuration="1001/30000s"/>
<asset id="r2" name="ntsc" start="0s" duration="300300/30000s" hasVideo="1" format="r1"
 src="file:///nowhere/ntsc.mov"/>
</resources><library><event name="e"><project name="NTSC">
<sequence format="r1" duration="240240/30000s" tcStart="0s" tcFormat="NDF"><spine>
<asset-clip ref="r2" offset="0s" name="A" duration="150150/30000s"/>
<asset-clip ref="r2" offset="150150/30000s" name="B" start="60060/30000s" duration="90090/30000s"/>
</spine></sequence></project></event></library></fcpxml>
"""


def _adapter_state():
    """The FCPXML adapter's reader class' methods and its module's time helper, as they are."""
    module = otio.adapters.from_name("fcpx_xml").module()
    return dict(vars(module.FcpxXml)), module.to_rational_time


def test_fcpxml_ntsc_project_reads_at_its_exact_rate(tools, tmp_path):
    """OpenTimelineIO's reader counts 29.97 fps as 29 (8.17 s, the cut at 5.17 s); vbgm reads
    the project at 30000/1001 with a subclass of the reader, and leaves the adapter as it is."""
    project = tmp_path / "ntsc.fcpxml"
    project.write_text(NTSC_PROJECT)
    raw = otio.adapters.read_from_file(str(project))[0]
    assert raw.duration() == otio.opentime.RationalTime(237, 29)   # the reader's: 150 + 87
    make_clip(tmp_path / "ntsc.mov", 300, "30000/1001")
    before = _adapter_state()
    loaded = load_timeline(project, media_dirs=[tmp_path])
    assert loaded.fps == pytest.approx(30000 / 1001)
    assert loaded.duration_s == pytest.approx(240240 / 30000)
    assert [c for c in loaded.cuts_s if 0 < c < loaded.duration_s] == \
        [pytest.approx(150150 / 30000)]
    a, b = loaded.timeline.find_clips()
    assert b.source_range.start_time.to_seconds() == pytest.approx(60060 / 30000)
    assert b.trimmed_range_in_parent().start_time.to_seconds() == pytest.approx(150150 / 30000)
    after = _adapter_state()   # the very same functions: nothing patched, nothing left over
    assert after[1] is before[1] and after[0].keys() == before[0].keys()
    assert all(after[0][k] is v for k, v in before[0].items())


def test_fcpxml_ntsc_fixture_reads_at_its_exact_rate(tmp_path):
    """29.97d.fcpxml (Final Cut Pro 10.6.6+) without its speed ramps: its connected storyline
    (lane 1 of the clip at 417417/30000 s) the reader places at its parent's offset, not at
    its own (53053/1200 s of the parent's source from 1301300/30000 s: 25 frames in): refused;
    without that too, every clip is where the file says. In frames (x 1001/30000 s): spine
    offsets 0, 103, 209 (a compound clip), 317, 417, 554, 678; the connected compound clip at
    2697 - 2674 + 678 = 701 (its offset 899899/10000 s less its parent's start 2676674/30000
    s); sequence duration 887887/30000 s = 887."""
    import re

    text = re.sub(r"\s*<timeMap>.*?</timeMap>", "", (UNSEEN / "29.97d.fcpxml").read_text(),
                  flags=re.S)
    no_ramps = tmp_path / "no_ramps.fcpxml"
    no_ramps.write_text(text)
    with pytest.raises(InputError) as err:
        load_timeline(no_ramps)
    assert str(err.value).startswith(f"{no_ramps}: OpenTimelineIO's FCPXML reader places the "
                                     'clip "TestVideo" at 13.91 s, which the project has at '
                                     "14.75 s")
    assert "\n" not in str(err.value)

    from vbgm_core.timeline.read import _read_file   # the reading alone: no media needed
    plain = tmp_path / "plain.fcpxml"
    plain.write_text(re.sub(r'\s*<spine lane="1".*?</spine>', "", text, flags=re.S))
    timeline = _read_file(otio, plain)
    frame = 1001 / 30000
    assert timeline.duration().to_seconds() == pytest.approx(887 * frame)
    spine, lane = timeline.tracks
    starts = [spine.range_of_child(c).start_time.to_seconds() for c in spine]
    assert starts == pytest.approx([f * frame for f in (0, 103, 209, 317, 417, 554, 678)])
    assert [type(c).__name__ for c in lane] == ["Gap", "Stack"]
    assert lane.range_of_child(lane[1]).start_time.to_seconds() == pytest.approx(701 * frame)


def test_an_ntsc_project_scores_to_otio_and_the_fcpxml_writer_refusal_names_the_output(
        tools, tiny_model, tmp_path):
    """Scored end to end at 29.97 fps into .otio; the FCPXML writer cannot write a rate that
    is not a whole number: one line naming the user's output (not the run's temporary), and
    nothing written."""
    (tmp_path / "ntsc.fcpxml").write_text(NTSC_PROJECT)
    make_clip(tmp_path / "ntsc.mov", 300, "30000/1001")
    (tmp_path / "otio").mkdir()
    score_and_check(tmp_path / "ntsc.fcpxml", tmp_path, tiny_model, tmp_path / "otio",
                    30000 / 1001, 240)
    out = tmp_path / "fcpx" / "scored.fcpxml"
    out.parent.mkdir()
    done = vbgm("score", tmp_path / "ntsc.fcpxml", "-o", out, "--media-dir", tmp_path,
                "--model", tiny_model)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"vbgm score: error: {out}: the .fcpxml writer cannot "
                                  "express this timeline"), done.stderr
    assert not list(out.parent.iterdir())
