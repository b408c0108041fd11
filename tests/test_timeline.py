"""Editors' timelines (vbgm_core/timeline): every real timeline in ../shared/timelines read as
what the viewer sees, against stand-in media made here (tiny clips with the referenced names,
lengths, frame rates and start timecodes); the scored timeline written and read back.

Expected segments are in frames of the timeline's rate, worked out by hand from each file's
own numbers (clip positions, in/out points, timecodes, dissolves, lanes)."""

import math
import shutil
import subprocess
import sys
from pathlib import Path, PureWindowsPath

import pytest
from conftest import SHARED

from vbgm_core.errors import InputError
from vbgm_core.timeline import (
    TIMELINE_SUFFIXES,
    is_timeline,
    load_timeline,
    write_scored_timeline,
)
from vbgm_core.timeline.media import probe_media, reference_path, timecode_seconds
from vbgm_core.video.edit import EditList, Segment, analyze_edit

TIMELINES = SHARED / "timelines"
EDL_TC = "01:00:00:00"

# Stand-in media for each shared timeline: (file name, frames, fps, start timecode). Lengths are
# the media lengths the timelines give (available ranges), else long enough for every clip.
# The FCPX ones are in lower case (the timeline says IMG_0715.MOV): relinking ignores case.
MEDIA = {
    "premiere_example.xml": [("sc01_sh010_anim.mov", 100, 30, None),
                             ("sc01_sh020_anim.mov", 175, 30, None),
                             ("sc01_sh030_anim.mov", 400, 30, None),
                             ("sc01_master_layerA_sh030_temp.mov", 400, 30, "00:00:03:09")],
    "fcpx_example.fcpxml": [(f"img_{n}.mov", frames, 30, None) for n, frames in (
        ("0715", 324), ("0513", 312), ("0687", 694), ("0233", 1356), ("0268", 1106),
        ("0857", 2044), ("0858", 634), ("0740", 1333))],
    # EDLs name clips without a usable file: these EXR names relink to .mov stand-ins.
    "premiere_example.edl": [("ZZ100_501.take_1.0001.mov", 144, 24, EDL_TC),
                             ("ZZ100_502A.take_2.0101.mov", 216, 24, EDL_TC)],
    "avid_example.edl": [("ZZ100_501.take_1.0001.mov", 144, 24, EDL_TC),
                         ("ZZ100_502A.take_2.0101.mov", 216, 24, EDL_TC)],
    "25fps.edl": [("sq001_s001.mov", 161, 25, EDL_TC), ("sq001_s002.mov", 200, 25, EDL_TC),
                  ("sq001_s003.mov", 86, 25, EDL_TC), ("sq001_s004.mov", 49, 25, EDL_TC)],
    "multitrack.otio": [("tech.fux (loop)-HD.mp4", 720, 24, None),
                        ("out-b (loop)-HD.mp4", 722, 24, None),
                        ("brokchrd (loop)-HD.mp4", 720, 24, None),
                        ("t-hawk (loop)-HD.mp4", 480, 24, None), ("KOLL-HD.mp4", 640, 24, None)],
    # clip names without an extension: any extension matches
    "nested_example.otio": [("Normal Clip 1.mov", 384, 24, None),
                            ("Clip Inside A Stack 1.mov", 420, 24, None),
                            ("Normal Clip 2.mov", 144, 24, None),
                            ("Clip Inside A Stack 2.mov", 480, 24, None),
                            ("Normal Clip 3.mov", 264, 24, None),
                            ("Normal Clip 4.mov", 384, 24, None)],
    "simple_cut.otio": [("titles.mov", 8, 24, None), ("wind-up.mov", 8, 24, None),
                        ("punchline.mov", 8, 24, None), ("credits.mov", 6, 24, "00:00:04:04")],
    "transition.otio": [("titles.mov", 8, 24, None), ("wind-up.mov", 9, 24, None),
                        ("punchline.mov", 10, 24, "00:00:00:01"),
                        ("credits.mov", 6, 24, "00:00:04:04")],
}

# What the viewer sees: (file or None for a still, timeline in, out, source in, out), frames.
EXPECTED = {
    "premiere_example.xml": (30, 1271, [
        ("sc01_sh010_anim.mov", 13, 113, 0, 100),
        (None, 113, 165, 0, 52),  # the title (its own track) where nothing lies beneath
        ("sc01_sh020_anim.mov", 165, 322, 0, 157),
        ("sc01_sh030_anim.mov", 322, 547.5, 0, 225.5),  # dissolve to black: cut at 557 - 19/2
        ("sc01_sh010_anim.mov", 547.5, 636, 11.5, 100),  # the lower track shows through
        (None, 636, 956, 0, 320),  # the nested sequence (read empty) under the title
        ("sc01_master_layerA_sh030_temp.mov", 956, 1164.5, 34, 242.5),  # in 34 (tc 3:09)
        ("sc01_sh010_anim.mov", 1164.5, 1246, 18.5, 100)]),  # dissolve 12+13: cut +0.5
    "fcpx_example.fcpxml": (30, 4500, [
        ("img_0715.mov", 0, 300, 0, 300),
        ("img_0513.mov", 600, 900, 0, 300),  # lane 1
        ("img_0268.mov", 1500, 1785, 0, 285),
        ("img_0740.mov", 1785, 1937, 15, 167),  # lane 2 covers it from 1937
        ("img_0857.mov", 1937, 2237, 0, 300),
        ("img_0233.mov", 2400, 2591, 109, 300),  # compound clip trimmed from 3:19
        ("img_0268.mov", 2891, 3191, 0, 300),  # its lane 1, at 600 inside it
        ("img_0233.mov", 3300, 3600, 0, 300),
        ("img_0687.mov", 3600, 3900, 376, 676),
        ("img_0268.mov", 3900, 4200, 232, 532),
        ("img_0233.mov", 4200, 4443, 57, 300)]),  # compound clip from 1:27
    "premiere_example.edl": (24, 81, [
        ("ZZ100_501.take_1.0001.mov", 0, 31, 101, 132),  # 01:00:04:05 - 01:00:00:00
        ("ZZ100_502A.take_2.0101.mov", 31, 81, 157, 207)]),
    "avid_example.edl": (24, 81, [
        ("ZZ100_501.take_1.0001.mov", 0, 31, 101, 132),
        ("ZZ100_502A.take_2.0101.mov", 31, 81, 157, 207)]),
    "25fps.edl": (25, 496, [
        ("sq001_s001.mov", 0, 161, 0, 161), ("sq001_s002.mov", 161, 361, 0, 200),
        ("sq001_s003.mov", 361, 447, 0, 86), ("sq001_s004.mov", 447, 496, 0, 49)]),
    "multitrack.otio": (24, 3282, [
        ("tech.fux (loop)-HD.mp4", 0, 482, 0, 482),
        ("t-hawk (loop)-HD.mp4", 482, 962, 0, 480),  # track 2 over track 1
        ("out-b (loop)-HD.mp4", 962, 1198, 159, 395),  # starts at 803 beneath
        ("KOLL-HD.mp4", 1198, 1838, 0, 640),
        ("brokchrd (loop)-HD.mp4", 1957, 2677, 0, 720)]),
    "nested_example.otio": (24, 636, [
        ("Normal Clip 1.mov", 0, 238, 135, 373),
        ("Clip Inside A Stack 1.mov", 238, 269, 373, 404),
        ("Normal Clip 2.mov", 269, 302, 101, 134),
        # 0.8545x time warp on its stack: 24 source frames over 24 / 0.8545 timeline frames
        ("Clip Inside A Stack 2.mov", 302, 302 + 24 / 0.8545454551724138, 429, 453),
        ("Normal Clip 3.mov", 331, 394, 179, 242),
        (None, 394, 398, 0, 4),  # FreezeFrame on the nested track
        ("Normal Clip 4.mov", 398, 636, 135, 373)]),
    "simple_cut.otio": (24, 19, [
        ("titles.mov", 0, 3, 3, 6), ("wind-up.mov", 3, 9, 2, 8),
        ("punchline.mov", 9, 13, 0, 4), ("credits.mov", 13, 19, 0, 6)]),  # 100 - tc 4:04
    "transition.otio": (24, 19, [
        ("titles.mov", 0, 3, 3, 6), ("wind-up.mov", 3, 9.5, 2, 8.5),  # dissolve 2+3 frames
        ("punchline.mov", 9.5, 13, 2.5, 6), ("credits.mov", 13, 19, 0, 6)]),
}
EMPTY = {"sample_just_track.xml"}  # a sequence with no tracks: nothing to see


def make_clip(path, frames, fps, timecode=None):
    """A tiny test-pattern video (64x36, mpeg4) with a start timecode when given."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=64x36:rate={fps}",
           "-frames:v", str(frames)] + (["-timecode", timecode] if timecode else [])
    fmt = "mp4" if path.suffix.lower() == ".mp4" else "mov"
    subprocess.run(cmd + ["-c:v", "mpeg4", "-f", fmt, str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def tools():
    """OpenTimelineIO (the timeline extra), and ffmpeg/ffprobe for stand-in media."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("ffmpeg and ffprobe are needed for stand-in media")
    return pytest.importorskip("opentimelineio", reason="the timeline extra is not installed")


@pytest.fixture(scope="module")
def timelines(tools):
    if not TIMELINES.is_dir():
        pytest.skip(f"needs the shared timelines folder {TIMELINES} (absent in this checkout)")
    return TIMELINES


def media_folders(tmp_path_factory, table, extra=None):
    """``folder(timeline name)`` → a folder of its stand-in media, made once: ``table[name]``
    lists ``(file name, frames, fps, start timecode or None)``; ``extra(name, folder)`` adds
    what a clip cannot be (a sound file)."""
    made = {}

    def folder(name):
        if name not in made:
            made[name] = tmp_path_factory.mktemp(name.replace(".", "_"))
            for item in table[name]:
                make_clip(made[name] / item[0], *item[1:])
            if extra is not None:
                extra(name, made[name])
        return made[name]
    return folder


@pytest.fixture(scope="module")
def media(timelines, tmp_path_factory):
    """``media(timeline name)`` → a folder of its stand-in media (made once per module)."""
    return media_folders(tmp_path_factory, MEDIA)


def frames_of(loaded):
    """The edit's segments as (file, timeline in, out, source in, out) in frames."""
    r = loaded.fps
    return [(s.path.name if s.path else None, s.timeline_start_s * r, s.timeline_end_s * r,
             s.source_start_s * r, s.source_end_s * r) for s in loaded.edit.segments]


def assert_segments(loaded, expected):
    got = frames_of(loaded)
    assert [g[0] for g in got] == [e[0] for e in expected]
    for g, e in zip(got, expected):
        assert g[1:] == pytest.approx(e[1:], abs=1e-6), g


def segment_at(loaded, t):
    return next(s for s in loaded.edit.segments if s.timeline_start_s <= t < s.timeline_end_s)


def test_suffixes_decide_what_is_a_timeline():
    assert TIMELINE_SUFFIXES == (".otio", ".xml", ".fcpxml", ".edl")
    assert all(is_timeline(f"cut{s.upper()}") for s in TIMELINE_SUFFIXES)
    assert not is_timeline("clip.mp4") and not is_timeline("edit.json") and not is_timeline(None)


def test_every_shared_timeline_is_tested(timelines):
    present = {p.name for p in timelines.iterdir() if p.suffix in TIMELINE_SUFFIXES}
    assert present == set(EXPECTED) | EMPTY


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_timeline_reads_as_the_viewer_sees_it(timelines, media, name):
    fps, frames, expected = EXPECTED[name]
    loaded = load_timeline(timelines / name, media_dirs=[media(name)])
    assert loaded.fps == fps and loaded.duration_s * fps == pytest.approx(frames)
    assert loaded.edit.fps == fps and loaded.edit.duration_s == loaded.duration_s
    assert loaded.source == timelines / name and loaded.edit.source == timelines / name
    assert_segments(loaded, expected)
    # every edit point is a cut, to the frame: segment edges, gaps' edges, dissolves' midpoints
    edges = sorted({t for e in expected for t in e[1:3] if 0 < t < frames})
    assert [c * fps for c in loaded.cuts_s] == pytest.approx(edges, abs=1e-3)
    assert loaded.timeline.tracks.duration().to_seconds() == pytest.approx(loaded.duration_s)


def test_an_empty_sequence_is_one_clear_error(timelines):
    with pytest.raises(InputError, match="sample_just_track.xml: no video clip") as err:
        load_timeline(timelines / "sample_just_track.xml")
    assert "\n" not in str(err.value)


def test_premiere_xml_numbers_dissolves_title_and_linked_sound(timelines, media):
    loaded = load_timeline(timelines / "premiere_example.xml",
                           media_dirs=[media("premiere_example.xml")])
    # the clipitem: start 956, in 34 of a file whose timecode starts at 00:00:03:09 (frame
    # 99); OpenTimelineIO says the source starts at 00:00:04:13 (frame 133) on that clock
    temp = segment_at(loaded, 957 / 30)
    assert temp.path.name == "sc01_master_layerA_sh030_temp.mov"
    assert temp.timeline_start_s == pytest.approx(956 / 30)
    assert temp.source_start_s == pytest.approx(34 / 30) and temp.rate == pytest.approx(1.0)
    # a cross dissolve of 12 + 13 frames around the cut at 1164: cut at its midpoint
    assert temp.timeline_end_s == pytest.approx(1164.5 / 30)
    assert any(abs(c - 1164.5 / 30) < 1e-6 for c in loaded.cuts_s)
    # the title is a still picture where nothing is beneath; over a clip, the clip is seen
    title = segment_at(loaded, 4.0)
    assert title.path is None and not title.audio
    assert segment_at(loaded, 2.0).path.name == "sc01_sh010_anim.mov"
    # sound: a clip whose own audio is on an audio track is heard; sh020 has none
    assert segment_at(loaded, 2.0).audio and not segment_at(loaded, 6.0).audio
    assert loaded.edit.segments[0].timeline_start_s == pytest.approx(13 / 30)  # black before


def test_disabled_clip_is_not_seen(timelines, media, tmp_path):
    text = (timelines / "premiere_example.xml").read_text()
    clip = "<name>sc01_sh020_anim.mov</name>\n\t\t\t\t\t\t<enabled>TRUE</enabled>"
    assert text.count(clip) == 1
    disabled = tmp_path / "disabled.xml"
    disabled.write_text(text.replace(clip, clip.replace("TRUE", "FALSE")))
    loaded = load_timeline(disabled, media_dirs=[media("premiere_example.xml")])
    names = [s.path.name for s in loaded.edit.segments if s.path]
    assert "sc01_sh020_anim.mov" not in names
    still = segment_at(loaded, 6.0)  # the title shows where the clip was
    assert still.path is None and still.timeline_start_s == pytest.approx(113 / 30)
    assert still.timeline_end_s == pytest.approx(322 / 30)


def test_fcpx_top_lane_wins_and_compound_clips_flatten(timelines, media):
    loaded = load_timeline(timelines / "fcpx_example.fcpxml",
                           media_dirs=[media("fcpx_example.fcpxml")])
    assert loaded.timeline.name == "OpenTimeline_Project"  # the first of the library's two
    assert segment_at(loaded, 62.0).path.name == "img_0740.mov"  # lane 1
    top = segment_at(loaded, 66.0)  # lanes 1 and 2 both have a clip: lane 2 is seen
    assert top.path.name == "img_0857.mov" and top.timeline_start_s == pytest.approx(1937 / 30)
    compound = segment_at(loaded, 80.0)
    assert compound.path.name == "img_0233.mov"
    assert compound.source_start_s == pytest.approx(109 / 30)
    with pytest.raises(StopIteration):
        segment_at(loaded, 12.0)  # a gap in every lane: black


def test_nested_time_warp_and_freeze_frame(timelines, media):
    loaded = load_timeline(timelines / "nested_example.otio",
                           media_dirs=[media("nested_example.otio")])
    warped = segment_at(loaded, 303 / 24)
    assert warped.path.name == "Clip Inside A Stack 2.mov"
    assert warped.rate == pytest.approx(1 / 0.8545454551724138)
    frozen = segment_at(loaded, 395 / 24)
    assert frozen.path is None and frozen.timeline_end_s == pytest.approx(398 / 24)


DISSOLVE_EDL = """TITLE: DISSOLVE, BLACK AND A GAP
FCM: NON-DROP FRAME

001  AX       V     C        01:00:00:00 01:00:04:00 00:00:00:00 00:00:04:00
* FROM CLIP NAME:  shot_a
002  AX       V     C        01:00:04:00 01:00:04:00 00:00:04:00 00:00:04:00
002  AX       V     D    024 01:00:10:00 01:00:14:00 00:00:04:00 00:00:08:00
* FROM CLIP NAME:  shot_a
* TO CLIP NAME:  shot_b
003  BL       V     C        00:00:00:00 00:00:01:00 00:00:08:00 00:00:09:00
004  AX       V     C        01:00:20:00 01:00:22:00 00:00:11:00 00:00:13:00
* FROM CLIP NAME:  shot_c
"""


def test_edl_dissolve_black_and_gap(tools, tmp_path):
    edl = tmp_path / "cut.edl"
    edl.write_text(DISSOLVE_EDL)
    clips = tmp_path / "clips"
    clips.mkdir()
    make_clip(clips / "shot_a.mov", 120, 24, "01:00:00:00")
    make_clip(clips / "Shot_B.mov", 96, 24, "01:00:10:00")
    make_clip(clips / "shot_c.mov", 48, 24, "01:00:20:00")
    loaded = load_timeline(edl, media_dirs=[clips])
    assert loaded.fps == 24 and loaded.duration_s == pytest.approx(13.0)
    # a 24-frame dissolve from 4 s: cut at 4.5 s, shot_a played on over its handle
    assert_segments(loaded, [("shot_a.mov", 0, 108, 0, 108), ("Shot_B.mov", 108, 192, 12, 96),
                             (None, 192, 216, 0, 24),  # BL: black
                             ("shot_c.mov", 264, 312, 0, 48)])  # after a 2 s gap
    assert list(loaded.cuts_s) == pytest.approx([4.5, 8.0, 9.0, 11.0])


def test_edl_rate_from_timecodes_media_or_caller(timelines, media, tmp_path):
    # 25fps.edl has frame 24 in its timecodes: not 24 fps
    assert load_timeline(timelines / "25fps.edl", media_dirs=[media("25fps.edl")]).fps == 25
    with pytest.raises(InputError, match="25fps.edl: not a readable EDL timeline") as err:
        load_timeline(timelines / "25fps.edl", media_dirs=[media("25fps.edl")], rate=24)
    assert "\n" not in str(err.value)
    # timecodes that fit 24 fps, media at 25 fps: the EDL counts the media's frames
    pal = tmp_path / "pal"
    pal.mkdir()
    make_clip(pal / "ZZ100_501.take_1.0001.mov", 150, 25, EDL_TC)
    make_clip(pal / "ZZ100_502A.take_2.0101.mov", 225, 25, EDL_TC)
    loaded = load_timeline(timelines / "premiere_example.edl", media_dirs=[pal])
    assert loaded.fps == 25 and loaded.duration_s == pytest.approx(84 / 25)  # 00:59:53:11-56:20
    assert loaded.edit.segments[0].source_start_s == pytest.approx(4 + 5 / 25)
    with pytest.raises(InputError, match="frame rate is given for an EDL only"):
        load_timeline(timelines / "simple_cut.otio", rate=24)


def test_missing_media_all_named_in_one_line(timelines, media, tmp_path):
    with pytest.raises(InputError) as err:
        load_timeline(timelines / "premiere_example.xml")
    message = str(err.value)
    assert message.startswith("premiere_example.xml: 6 clips have no media (")
    for name in ("sc01_sh010_anim.mov", "sc01_sh020_anim.mov", "sc01_sh030_anim.mov",
                 "sc01_master_layerA_sh030_temp.mov"):
        assert name in message
    assert "placeholder.wav" not in message  # sound only: not needed to see the edit
    assert "--media-dir" in message and "\n" not in message
    some = tmp_path / "some"
    shutil.copytree(media("premiere_example.xml"), some)
    (some / "sc01_sh020_anim.mov").unlink()
    with pytest.raises(InputError, match=r"1 clip has no media \(sc01_sh020_anim.mov\) "
                                         r"\(looked in .*some\)"):
        load_timeline(timelines / "premiere_example.xml", media_dirs=[some])


def test_relinking_by_name_relative_paths_and_urls(tools, timelines, media, tmp_path):
    otio = tools
    # the FCPX timeline says IMG_0715.MOV: found as img_0715.mov
    fcpx = load_timeline(timelines / "fcpx_example.fcpxml",
                         media_dirs=[media("fcpx_example.fcpxml")])
    assert fcpx.edit.segments[0].path.name == "img_0715.mov"
    # a name with an extension must match it (outside EDLs): a .mp4 is not the .mov
    other = tmp_path / "other"
    shutil.copytree(media("premiere_example.xml"), other)
    (other / "sc01_sh020_anim.mov").rename(other / "sc01_sh020_anim.mp4")
    with pytest.raises(InputError, match=r"\(sc01_sh020_anim.mov\)"):
        load_timeline(timelines / "premiere_example.xml", media_dirs=[other])
    # relative paths are relative to the timeline file; file URLs are used where they point
    (tmp_path / "project" / "clips").mkdir(parents=True)
    a = make_clip(tmp_path / "project" / "clips" / "a b.mov", 48, 24)
    b = make_clip(tmp_path / "b.mov", 48, 24)
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    for url in ("clips/a b.mov", b.as_uri()):
        track.append(otio.schema.Clip(
            name=url, media_reference=otio.schema.ExternalReference(target_url=url),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, 24),
                                                 otio.opentime.RationalTime(24, 24))))
    timeline = otio.schema.Timeline(name="relative")
    timeline.tracks.append(track)
    path = tmp_path / "project" / "cut.otio"
    otio.adapters.write_to_file(timeline, str(path))
    loaded = load_timeline(path)
    assert [s.path for s in loaded.edit.segments] == [a.resolve(), b]
    # an in-memory timeline: relative paths from the current folder, media folders as usual
    in_memory = load_timeline(timeline, media_dirs=[tmp_path / "project" / "clips"])
    assert in_memory.edit.segments[0].path.name == "a b.mov" and in_memory.source is None


def test_media_references_as_editors_write_them(tmp_path):
    premiere = reference_path("file://localhost/D%3a/media/sc01_sh010_anim.mov")
    assert isinstance(premiere, PureWindowsPath) and premiere.name == "sc01_sh010_anim.mov"
    avid = reference_path("S:\\path\\to\\ZZ100_501.take_1.0001.exr")
    assert avid.name == "ZZ100_501.take_1.0001.exr"
    assert reference_path("D:/media/x.mov").name == "x.mov"
    assert reference_path("file:///Volumes/Media/a%20b.MOV") == Path("/Volumes/Media/a b.MOV")
    assert reference_path("clips/a.mov", tmp_path) == tmp_path / "clips" / "a.mov"
    assert reference_path("file://server/share/a.mov").name == "a.mov"


def test_timecodes_non_drop_drop_frame_and_from_the_file(tools, tmp_path):
    assert timecode_seconds("01:00:00:00", 24) == 3600
    assert timecode_seconds("00:00:03:09", 30) == pytest.approx(3.3)
    assert timecode_seconds("00:00:01:24", 25) == pytest.approx(1.96)
    # drop-frame: 00:01:00;02 is frame 1800 at 29.97 (frames 0 and 1 of minute 1 are skipped)
    assert timecode_seconds("00:01:00;02", 30000 / 1001) == pytest.approx(1800 * 1001 / 30000)
    assert timecode_seconds("00:10:00;00", 30000 / 1001) == pytest.approx(17982 * 1001 / 30000)
    info = probe_media(make_clip(tmp_path / "tc.mov", 30, 30, "00:00:03:09"))
    assert info.timecode_s == pytest.approx(3.3) and info.fps == 30
    assert info.duration_s == pytest.approx(1.0)
    assert probe_media(make_clip(tmp_path / "none.mov", 30, 30)).timecode_s is None


def test_media_that_does_not_hold_the_clip_is_named(timelines, media, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(media("premiere_example.xml"), wrong)
    # another start timecode: the clip's source (frame 133 on the timeline's clock) is before it
    make_clip(wrong / "sc01_master_layerA_sh030_temp.mov", 400, 30, "00:00:10:00")
    with pytest.raises(InputError) as err:
        load_timeline(timelines / "premiere_example.xml", media_dirs=[wrong])
    assert "1 clip cannot be played: sc01_master_layerA_sh030_temp.mov at 31.87 s" in str(err.value)
    assert "another start timecode" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, content", [
    ("broken.xml", '<?xml version="1.0"?><xmeml version="4"><sequence><name>x</name>'),
    ("broken.edl", "TITLE: X\n001  AX V C 01:00:00:00 01:00:01:00 00:00:00:00\n"),
    ("broken.otio", '{"OTIO_SCHEMA": "Timeline.1", "tracks": '),
    ("broken.fcpxml", "<fcpxml version='1.8'><library><event><project>"),
])
def test_malformed_timeline_is_one_line_naming_the_file(timelines, tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load_timeline(path)
    assert str(err.value).startswith(f"{path}: not a readable ") and "\n" not in str(err.value)


def test_missing_opentimelineio_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # import raises ImportError
    for call in (lambda: load_timeline(tmp_path / "cut.otio"),
                 lambda: write_scored_timeline(None, tmp_path / "o.otio", tmp_path / "m.wav", 1,
                                               [0])):
        with pytest.raises(InputError, match=r"pip install 'vbgm\[timeline\]'"):
            call()


def test_still_segments_round_trip_and_analyse_like_gaps(timelines, media, tmp_path):
    loaded = load_timeline(timelines / "premiere_example.xml",
                           media_dirs=[media("premiere_example.xml")])
    again = EditList.from_json(loaded.edit.to_json(tmp_path / "edit.json"))
    assert again.segments == loaded.edit.segments
    assert [s.path for s in again.segments].count(None) == 2
    only_stills = EditList(4.0, 30, (Segment(None, 0, 2, 0, 2, False),))
    with pytest.raises(InputError, match="no segment has a path"):
        EditList.from_dict(only_stills.to_dict())
    rhythm = analyze_edit(loaded.edit, tempo=120)  # 2 s bars
    assert rhythm.duration_s == pytest.approx(1271 / 30)
    assert all(b.speed == 0 for b in rhythm.bars[11:15])  # 22-30 s: the title, still
    assert max(b.speed for b in rhythm.bars[:5]) > 0  # the clips move
    assert {round(c, 3) for c in (636 / 30, 956 / 30)} <= {round(c, 3) for c in rhythm.cuts}


# ------------------------------------------------------------------ writing


@pytest.fixture
def scored(timelines, media, tmp_path):
    """``score(name, suffix)`` → (loaded, written path, wav, bar times): a shared timeline
    scored with a silent WAV as long as it, 2 s bars, a chord or two per bar."""
    def score(name, suffix, **kw):
        loaded = load_timeline(timelines / name, media_dirs=[media(name)])
        wav = tmp_path / "music.wav"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "anullsrc=r=8000:cl=mono", "-t", f"{loaded.duration_s}", str(wav)],
                       check=True)
        bars = [2.0 * i for i in range(math.ceil(loaded.duration_s / 2))]  # all before the end
        chords = [("Am", "F") if i % 2 else "C" for i in range(len(bars))]
        out = write_scored_timeline(loaded.timeline, tmp_path / f"scored{suffix}", wav,
                                    loaded.duration_s, bars, chords, **kw)
        return loaded, out, wav, bars
    return score


def describe(composition, skip_markers=()):
    """Everything about a composition's items that the written timeline must keep."""
    found = []
    for item in composition:
        markers = getattr(item, "markers", [])
        found.append((item.schema_name(), item.name, getattr(item, "enabled", None),
                      str(getattr(item, "source_range", None)),
                      None if item.schema_name() == "Transition" else str(item.range_in_parent()),
                      str(getattr(item, "in_offset", "")), str(getattr(item, "out_offset", "")),
                      getattr(getattr(item, "media_reference", None), "target_url", None),
                      sorted((m.name, str(m.marked_range)) for m in markers
                             if m.name not in skip_markers)))
        if item.schema_name() in ("Stack", "Track"):
            found.append(describe(item, skip_markers))
    return found


def read_back(path):
    import opentimelineio as otio

    found = otio.adapters.read_from_file(str(path))
    return found if isinstance(found, otio.schema.Timeline) else found[0]


def score_clip(timeline, wav):
    clips = [c for c in timeline.find_clips()
             if getattr(c.media_reference, "target_url", "") == wav.resolve().as_uri()]
    assert len(clips) == 1
    return clips[0]


def check_score_clip(clip, loaded, bars, comments=True):
    rate = loaded.fps
    span = clip.range_in_parent()
    assert clip.parent().kind == "Audio" and span.start_time.value == 0
    assert span.duration.rescaled_to(rate).value == pytest.approx(loaded.duration_s * rate)
    assert clip.source_range.start_time.value == 0
    assert [m.name for m in clip.markers] == [f"bar {n}" for n in range(1, len(bars) + 1)]
    assert [m.marked_range.start_time.rescaled_to(rate).value for m in clip.markers] == \
        [round(b * rate) for b in bars]
    if comments:
        got = [m.comment or m.metadata.get("fcp_xml", {}).get("comment") for m in clip.markers]
        assert got[:2] == ["C", "Am, F"]


def test_written_otio_keeps_everything_and_adds_the_score(timelines, scored):
    loaded, out, wav, bars = scored("premiere_example.xml", ".otio")
    written = read_back(out)
    assert len(written.tracks) == len(loaded.timeline.tracks) + 1
    assert written.tracks[-1].name == "vbgm score" and len(written.tracks[-1]) == 1
    assert describe(written.tracks[:-1]) == describe(loaded.timeline.tracks)
    assert [m.name for m in written.tracks.markers] == \
        [m.name for m in loaded.timeline.tracks.markers]
    check_score_clip(score_clip(written, wav), loaded, bars)
    fresh = read_back(timelines / "premiere_example.xml")
    assert describe(loaded.timeline.tracks) == describe(fresh.tracks)  # the input is untouched


def test_fcp_xml_round_trip(timelines, scored):
    loaded, out, wav, bars = scored("premiere_example.xml", ".xml")
    written = read_back(out)
    # FCP 7 XML tracks have no names: the score is the last audio track
    assert describe(written.tracks[:-1]) == describe(loaded.timeline.tracks)
    assert score_clip(written, wav).parent() is written.tracks[-1]
    check_score_clip(score_clip(written, wav), loaded, bars)
    again = load_timeline(out, media_dirs=[loaded.edit.segments[0].path.parent])
    assert again.edit.segments == loaded.edit.segments and again.cuts_s == loaded.cuts_s


def test_fcpxml_score_is_a_connected_audio_clip(timelines, scored):
    loaded, out, wav, bars = scored("fcpx_example.fcpxml", ".fcpxml")
    written = read_back(out)
    original = {t.name: t for t in loaded.timeline.tracks}
    kept = [t for t in written.tracks if t.name in original]
    assert [t.name for t in kept] == list(original)
    # OpenTimelineIO's FCPX reader also hangs a connected clip's markers on the storyline clip
    # beneath it (IMG_0715 here); the file holds them inside the score's clip only
    bar_names = {f"bar {n}" for n in range(1, len(bars) + 1)}
    assert all(describe(t, bar_names) == describe(original[t.name], bar_names) for t in kept)
    check_score_clip(score_clip(written, wav), loaded, bars, comments=False)
    xml = out.read_text()
    music = xml.index(f'<clip name="{wav.name}"')
    assert xml.index('value="bar 2"') > music
    assert xml.index('value="bar 2"') < xml.index("</clip>", music)


def test_unwritable_formats_and_existing_outputs(timelines, scored, tmp_path):
    loaded, out, wav, bars = scored("transition.otio", ".otio")
    with pytest.raises(InputError, match="output exists"):
        write_scored_timeline(loaded.timeline, out, wav, loaded.duration_s, bars)
    out.write_text("old")
    write_scored_timeline(loaded.timeline, out, wav, loaded.duration_s, bars, overwrite=True)
    assert read_back(out).tracks[-1].name == "vbgm score"
    with pytest.raises(InputError, match="an EDL cannot hold the score"):
        write_scored_timeline(loaded.timeline, tmp_path / "x.edl", wav, loaded.duration_s, bars)
    with pytest.raises(InputError, match="music lasts 5.000 s but the timeline 0.792 s"):
        write_scored_timeline(loaded.timeline, tmp_path / "y.otio", wav, 5.0, bars)
    # a timeline the FCP 7 XML writer cannot express (a clip without a source range): one line,
    # and nothing left behind
    with pytest.raises(InputError, match=r"z.xml: the .xml writer cannot express") as err:
        write_scored_timeline(read_back(TIMELINES / "simple_cut.otio"), tmp_path / "z.xml", wav,
                              loaded.duration_s, bars)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["music.wav", "scored.otio"]
