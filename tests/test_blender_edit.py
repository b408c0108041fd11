"""The whole edit in Blender (real bpy): strips → edit list → one score strip spanning them,
the movies' own sound lowered, and volume keyframes where someone speaks.

The timeline (scene at 30 fps), built with the data API only (no sequencer operators):

    frames   31 ........ 181 ...... 256 .. 271 ...... 331
    ch 3                                   [meta: bunny30]   child trimmed by the meta's handles
    ch 2     [talking.mp4 ][test25 ]
    ch 1     [talking sound]

talking.mp4 (29.83 fps, narration) trimmed at both ends; test25 a 25 fps clip made by ffmpeg
(plays 1.2x fast: 75 source frames = 2.5 s of timeline); a gap of 15 frames; a meta strip
showing a 30 fps clip from its second 1 to 3. Run with .venv-blender; the core parts run in
the main venv's Python (`vbgm`'s interpreter) as the add-on itself runs them.
"""

import json
import subprocess
import wave
from pathlib import Path

import pytest
from conftest import vbgm_command, wav_duration_s

bpy = pytest.importorskip("bpy", reason="bpy not installed: run with .venv-blender (scripts/setup_blender_venv.sh)")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TALKING = SHARED / "videos" / "talking.mp4"
BUNNY = REPO / "examples" / "media" / "bigbuckbunny.mp4"
FPS = 30
SPAN = (31, 331)  # the selected strips' visible frames
TALK_FPS = 179 / 6


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, timeout=120)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 25 fps clip (moving test pattern, 3 s) and a 30 fps one (Big Buck Bunny, 5.28 s)."""
    folder = tmp_path_factory.mktemp("clips")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", 3, "-pix_fmt", "yuv420p",
           folder / "test25.mp4")
    ffmpeg("-i", BUNNY, "-r", 30, "-an", "-pix_fmt", "yuv420p", folder / "bunny30.mp4")
    return folder


@pytest.fixture(scope="module")
def talking10(tmp_path_factory):
    """talking.mp4 at 10 fps (the same 20 s, the narration's sound untouched)."""
    if not TALKING.is_file():
        pytest.skip(f"shared clip talking.mp4 not found at {TALKING.parent} (../shared beside the checkout)")
    path = tmp_path_factory.mktemp("talking10") / "talking10.mp4"
    ffmpeg("-i", TALKING, "-r", 10, "-t", 20, "-pix_fmt", "yuv420p", "-c:a", "copy", path)
    return path


@pytest.fixture(scope="module")
def addon(registered_addon):
    return registered_addon


def new_scene(tmp_path):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "edit.blend"))
    sc = bpy.context.scene
    sc.render.fps, sc.render.fps_base = FPS, 1.0
    sc.frame_start, sc.frame_end = 1, 400
    sc.sequence_editor_create()
    return sc


@pytest.fixture
def timeline(addon, clips, tmp_path):
    if not TALKING.is_file():
        pytest.skip(f"shared clip talking.mp4 not found at {TALKING.parent} (../shared beside the checkout)")
    sc = new_scene(tmp_path)
    strips = sc.sequence_editor.strips
    talk = strips.new_movie("talking", str(TALKING), 2, 1)
    talk.frame_offset_start, talk.frame_offset_end = 30, talk.frame_duration - 180
    sound = strips.new_sound("talking sound", str(TALKING), 1, 1)
    sound.frame_offset_start, sound.frame_offset_end = 30, sound.frame_duration - 180
    test25 = strips.new_movie("test25", str(clips / "test25.mp4"), 2, 181)
    meta = strips.new_meta("meta", 3, 241)
    meta.strips.new_movie("bunny30", str(clips / "bunny30.mp4"), 1, 241)
    meta.frame_final_end = 331  # new_meta makes a one-frame meta: open it to its content,
    meta.frame_final_start = 271  # then its left handle cuts its child's first second
    for s in (talk, test25, meta):
        s.select = True
    sc.sequence_editor.active_strip = talk
    return sc


def plan_of(sc, source="SELECTED", use_scene_range=True):
    from blender_vse import edit_list

    return edit_list.build(sc, source, use_scene_range)


def check_segment(segment, path, source, timeline, audio):
    assert Path(segment["path"]).name == path
    assert (segment["source_start_s"], segment["source_end_s"]) == pytest.approx(source, abs=1e-6)
    assert (segment["timeline_start_s"], segment["timeline_end_s"]) == pytest.approx(timeline, abs=1e-6)
    assert segment["audio"] is audio


def test_edit_list_of_three_strips_and_a_meta(timeline):
    plan = plan_of(timeline)
    assert (plan.frame_start, plan.frame_end, plan.fps) == (*SPAN, FPS)
    assert plan.duration_s == pytest.approx(10.0) and plan.label == "meta +2"
    a, b, c = plan.segments
    check_segment(a, "talking.mp4", (30 / TALK_FPS, 180 / TALK_FPS), (0.0, 5.0), True)
    check_segment(b, "test25.mp4", (0.0, 3.0), (5.0, 7.5), False)  # 75 frames: 3 s of source
    check_segment(c, "bunny30.mp4", (1.0, 3.0), (8.0, 10.0), False)  # 7.5-8.0 s: a gap
    assert plan.originals == ["talking sound"]
    # The sound heard: the talking strip's own trims (30 frames at the head), at real speed.
    check_sound(plan.sounds, [(TALKING, (1.0, 6.0), 0.0)])
    assert len(plan.warnings) == 2  # talking (29.83 fps) and test25 (25 fps) in a 30 fps scene
    # 75 source frames (3 s) play in 75 scene frames (2.5 s): 1.2x fast, not 25/30
    assert any("'test25' is 25 fps in a 30 fps scene: it plays 1.2x as fast" in w for w in plan.warnings)
    written = json.loads(plan.write(Path(bpy.data.filepath).with_suffix(".json")).read_text())
    assert written["vbgm_edit"] == 1 and written["segments"] == plan.segments
    assert written["sounds"] == plan.sounds


def check_sound(sounds, expected):
    """``sounds`` (the edit list's) are ``expected``: ``[(path, (source s), timeline start s)]``."""
    assert [Path(s["path"]) for s in sounds] == [p.resolve() for p, _, _ in expected]
    for sound, (_, source, start) in zip(sounds, expected):
        assert set(sound) == {"path", "source_start_s", "source_end_s", "timeline_start_s"}
        assert (sound["source_start_s"], sound["source_end_s"]) == pytest.approx(source, abs=1e-6)
        assert sound["timeline_start_s"] == pytest.approx(start, abs=1e-6)


def test_sounds_are_what_is_heard(timeline, clips):
    """The edit list's ``sounds``: every sound strip heard over the span, at real speed, with
    its trims and sound offset, inside meta strips too (cut to the meta), cut to the span;
    not the muted ones, nor those in a muted channel, nor vbgm's own score takes."""
    from blender_vse import strips as vse

    editor = timeline.sequence_editor
    new = editor.strips.new_sound
    # A voice-over from frame 196 (5.5 s into the span), its sound 0.5 s late in the strip:
    # heard from 6.0 s, cut at the span's end (frame 331 = 10 s): 4 s of its file.
    voice = new("voice", str(TALKING), 5, 196)
    voice.sound_offset = 0.5
    new("muted", str(TALKING), 6, 31).mute = True
    new("channel muted", str(TALKING), 7, 31)
    editor.channels[7].mute = True
    new("after the span", str(TALKING), 6, 331)
    take = new("score take1", str(TALKING), 8, 31)
    take[vse.SOURCE_KEY] = "talking|test25"
    # Inside the meta (frames 271-331 visible): a sound from frame 241, heard from its 1 s.
    editor.strips["meta"].strips.new_sound("meta sound", str(TALKING), 2, 241)
    vse.set_original_level(timeline, ["talking sound"], "MUTE", 0.0)  # vbgm's mute: still the edit's
    check_sound(plan_of(timeline).sounds, [(TALKING, (1.0, 6.0), 0.0), (TALKING, (0.0, 4.0), 6.0),
                                           (TALKING, (1.0, 3.0), 8.0)])

    editor.strips["meta"].mute = True  # a muted meta silences its sounds
    voice.frame_offset_start = 45      # trimmed: heard from frame 241 (7 s), 1.5 - 0.5 s into its file
    check_sound(plan_of(timeline).sounds, [(TALKING, (1.0, 6.0), 0.0), (TALKING, (1.0, 4.0), 7.0)])


def slow_movie_timeline(tmp_path, talking10):
    """A 30 fps scene with the 10 fps talking clip and its sound from frame 1, as Blender adds
    a movie with its sound: the picture's 200 frames play in 6.67 s (3x fast), the sound at
    real speed over 600 frames; the narration (2.0-7.65 s of the file) is heard at 2.0 s."""
    sc = new_scene(tmp_path)
    movie = sc.sequence_editor.strips.new_movie("talking10", str(talking10), 2, 1)
    sc.sequence_editor.strips.new_sound("talking10 sound", str(talking10), 1, 1)
    movie.select = True
    sc.sequence_editor.active_strip = movie
    return sc


def test_sounds_at_another_frame_rate(addon, tmp_path, talking10):
    """A 10 fps movie in a 30 fps scene: the picture plays 3x fast, its sound does not. The
    warning says 3x; the segment covers 20 s of source in 6.67 s, the sound 6.67 s in 6.67 s."""
    plan = plan_of(slow_movie_timeline(tmp_path, talking10))
    assert (plan.frame_start, plan.frame_end) == (1, 201)
    assert plan.warnings == [("'talking10' is 10 fps in a 30 fps scene: it plays 3x as fast; the "
                              "music follows it as it plays")]
    check_segment(plan.segments[0], "talking10.mp4", (0.0, 20.0), (0.0, 200 / FPS), True)
    check_sound(plan.sounds, [(talking10, (0.0, 200 / FPS), 0.0)])


def test_duck_at_another_frame_rate_follows_the_sound(addon, tmp_path, talking10):
    """Duck with the 10 fps movie (issue 27): the music dips where the narration is heard (from
    2.0 s, the sound strip's timing), not where its source time falls in the sped-up picture
    (2.0 / 3 = 0.67 s to 7.65 / 3 = 2.55 s). Needs a core that reads the edit list's
    ``sounds``."""
    from blender_vse import strips

    sc = slow_movie_timeline(tmp_path, talking10)
    bpy.ops.vbgm.refresh_choices()
    sc.vbgm.genre, sc.vbgm.mix = addon.properties._choices["genres"][0][0], "DUCK"
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (strip,) = score_strips(sc)
    truth = json.loads(TALKING.with_suffix(".json").read_text())["speech"][0]  # 2.0-7.65 s

    def volume_at(seconds):
        sc.frame_set(round(1 + seconds * FPS))
        return strip.volume

    depth = 10 ** (sc.vbgm.duck_depth_db / 20)
    assert volume_at(1.2) == pytest.approx(1.0, rel=1e-3), "dipped under source-time speech"
    assert volume_at(4.0) == pytest.approx(depth, rel=1e-2)
    assert volume_at(6.5) == pytest.approx(depth, rel=1e-2)  # still speaking till 7.65 s
    fcurve = next(fc for fc in strips._fcurves(sc) if fc.data_path.endswith(f'["{strip.name}"].volume'))
    low = [k.co[0] for k in fcurve.keyframe_points if k.co[1] < 0.5]
    ramp_frames = (sc.vbgm.duck_attack_s + 0.3) * FPS  # the attack ramp, and the detector's slack
    assert low and min(low) >= 1 + truth["start_s"] * FPS - ramp_frames


def test_scene_range_only_crops_the_selection(timeline):
    timeline.frame_end = 300  # the meta is cut at frame 301
    plan = plan_of(timeline)
    assert (plan.frame_start, plan.frame_end) == (31, 301)
    check_segment(plan.segments[-1], "bunny30.mp4", (1.0, 2.0), (8.0, 9.0), False)
    whole = plan_of(timeline, use_scene_range=False)
    assert (whole.frame_start, whole.frame_end) == SPAN and len(whole.segments) == 3


def test_scene_range_scores_what_shows_topmost_and_unselected(timeline):
    """Source "Scene Range": every strip counts, selected or not; where strips overlap the
    higher channel shows; muted strips show nothing; frames with no movie are gaps."""
    strips = timeline.sequence_editor.strips
    over = strips.new_movie("over", str(BUNNY), 6, 100)  # 25 fps, over talking at frames 100-129
    over.frame_final_end = 130
    strips.new_movie("muted", str(BUNNY), 7, 40).mute = True
    for s in strips:
        s.select = False
    timeline.frame_start, timeline.frame_end = 11, 350
    with pytest.raises(Exception, match="No movie or meta strip selected"):
        plan_of(timeline)
    plan = plan_of(timeline, "SCENE")
    assert (plan.frame_start, plan.frame_end, plan.label) == (11, 351, timeline.name)
    names = [Path(s["path"]).name for s in plan.segments]
    assert names == ["talking.mp4", "bigbuckbunny.mp4", "talking.mp4", "test25.mp4", "bunny30.mp4"]
    t = [(s["timeline_start_s"], s["timeline_end_s"]) for s in plan.segments]
    assert t[0] == pytest.approx((20 / FPS, 89 / FPS)) and t[1] == pytest.approx((89 / FPS, 119 / FPS))
    # The talking strip resumes where the overlay ends, at the source time of that frame.
    assert plan.segments[2]["source_start_s"] == pytest.approx(129 / TALK_FPS)
    assert t[-1][1] == pytest.approx(320 / FPS)  # the gap 331-350 is covered by nothing


def wav_of(path, seconds, rate=44100):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * int(round(seconds * rate)))
    return path


def core(code, *args):
    """Run ``code`` in the core's Python (beside `vbgm`); its stdout parsed as JSON."""
    python = Path(vbgm_command()).parent / "python"
    done = subprocess.run([str(python), "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_duck_keyframes_where_the_edit_has_speech(timeline, tmp_path):
    """The speech the core finds in the edit (talking.mp4's own sound, timeline 1.0-5.0 s)
    becomes volume keyframes on the score strip: down under speech, up elsewhere."""
    from blender_vse import strips

    plan = plan_of(timeline)
    edit = plan.write(tmp_path / "edit.json")
    found = core("import json, sys\n"
                 "from vbgm_core.audio.mix import plan_mix\n"
                 "from vbgm_core.audio.speech import edit_speech\n"
                 "from vbgm_core.options import ScoreOptions\n"
                 "from vbgm_core.video.edit import EditList\n"
                 "e = EditList.from_json(sys.argv[1])\n"
                 "m = plan_mix(ScoreOptions(mix='duck'), e.duration_s, lambda: edit_speech(e))\n"
                 "print(json.dumps({'speech': m.speech, 'gain_db': m.music.breakpoints()}))", edit)
    truth = json.loads(TALKING.with_suffix(".json").read_text())["speech"][0]
    start = truth["start_s"] - 30 / FPS  # where it is heard: the sound strip's trim, real speed
    assert found["speech"][0][0] == pytest.approx(start, abs=0.3)
    sound = strips.add_score_strip(timeline, plan, wav_of(tmp_path / "m.wav", plan.duration_s), "score")
    strips.set_music_level(timeline, sound, [(t, db - 3.0) for t, db in found["gain_db"]], plan.fps)

    def volume_at(seconds):
        timeline.frame_set(int(round(SPAN[0] + seconds * FPS)))
        return sound.volume

    assert volume_at(3.0) == pytest.approx(10 ** (-15 / 20), rel=1e-3)  # speech: -3 - 12 dB
    assert volume_at(7.0) == pytest.approx(10 ** (-3 / 20), rel=1e-3)  # test25, no sound
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=bpy.data.filepath)
    sc = bpy.context.scene
    fcurve = next(fc for fc in strips._fcurves(sc) if fc.data_path.endswith('["score"].volume'))
    keys = [(k.co[0], k.co[1], k.interpolation) for k in fcurve.keyframe_points]
    assert {i for _, _, i in keys} == {"LINEAR"} and len(keys) == len(found["gain_db"])
    low = [f for f, v, _ in keys if v < 0.5 * 10 ** (-3 / 20)]
    # Low from the speech the core found (within 0.3 s of the truth, above) to the talking
    # strip's end (5 s): the keyframes are the core's curve, frame for frame.
    assert SPAN[0] + found["speech"][0][0] * FPS - 1 <= min(low) and max(low) <= SPAN[0] + 5.0 * FPS + 1


def test_original_sound_lowered_muted_and_kept(timeline):
    from blender_vse import strips

    sound = timeline.sequence_editor.strips["talking sound"]
    sound.volume = 0.8
    strips.set_original_level(timeline, ["talking sound"], "LOWER", -6.0)
    strips.set_original_level(timeline, ["talking sound"], "LOWER", -6.0)  # a second take
    assert sound.volume == pytest.approx(0.8 * 10 ** (-6 / 20)) and not sound.mute
    strips.set_original_level(timeline, ["talking sound"], "MUTE", -6.0)
    assert sound.mute
    assert plan_of(timeline).segments[0]["audio"]  # muted by vbgm: still the edit's own sound
    strips.set_original_level(timeline, ["talking sound"], "KEEP", -6.0)
    assert not sound.mute and sound.volume == pytest.approx(0.8)
    sound.mute = True  # muted by the user: not heard
    assert not plan_of(timeline).segments[0]["audio"]


def score_strips(sc):
    return [s for s in sc.sequence_editor.strips if s.type == "SOUND" and "vbgm_midi" in s]


def check_score_strip(sc, strip, frame_start, n_frames):
    """Starts at the span, lasts it, and the WAV lasts it too (within one frame)."""
    wav = Path(bpy.path.abspath(strip.sound.filepath))
    assert strip.frame_final_start == frame_start
    assert abs(strip.frame_final_duration - n_frames) <= 1
    assert abs(strip.frame_duration - n_frames) <= 1  # the audio as Blender reads it
    assert abs(wav_duration_s(wav) * FPS - n_frames) <= 1
    return wav


def test_fps_mismatch_strip_and_wav_have_the_span_length(addon, clips, tmp_path):
    """A 25 fps movie in a 30 fps scene: 75 source frames play as 75 scene frames (2.5 s);
    the music lasts 2.5 s, not the source's 3 s, and the strip shows all of it."""
    sc = new_scene(tmp_path)
    movie = sc.sequence_editor.strips.new_movie("test25", str(clips / "test25.mp4"), 2, 11)
    movie.select = True
    bpy.ops.vbgm.refresh_choices()
    sc.vbgm.genre = addon.properties._choices["genres"][0][0]
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (strip,) = score_strips(sc)
    wav = check_score_strip(sc, strip, 11, 75)
    assert wav_duration_s(wav) == pytest.approx(2.5, abs=1 / FPS)
    assert strip.channel == 1 and strip.volume == 1.0 and "test25" in strip.name
    edit = json.loads(Path(strip["vbgm_edit"]).read_text())
    assert edit["segments"][0]["source_end_s"] == pytest.approx(3.0)


def test_whole_edit_one_strip_cuts_at_the_boundaries(addon, timeline):
    """Generate Score on the three strips: one score strip over frames 31-330, the movies'
    own sound lowered, a second take mutes the first; the edit it scored has its cuts at the
    strip boundaries."""
    bpy.ops.vbgm.refresh_choices()
    settings = timeline.vbgm
    settings.genre, settings.seed, settings.music_gain_db = addon.properties._choices["genres"][0][0], 3, -2.0
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (first,) = score_strips(timeline)
    check_score_strip(timeline, first, SPAN[0], SPAN[1] - SPAN[0])
    assert first.volume == pytest.approx(10 ** (-2 / 20))
    talking_sound = timeline.sequence_editor.strips["talking sound"]
    assert talking_sound.volume == pytest.approx(10 ** (-10.5 / 20)) and not talking_sound.mute
    assert first.channel not in (1, 2, 3)  # channels 1-3 are busy over the span

    rhythm = core("import json, sys\n"
                  "from vbgm_core.video.edit import EditList, analyze_edit\n"
                  "print(json.dumps(analyze_edit(EditList.from_json(sys.argv[1])).cuts))",
                  first["vbgm_edit"])
    for boundary in (5.0, 7.5, 8.0):
        assert min(abs(c - boundary) for c in rhythm) <= 1.5 / 25, (boundary, rhythm)

    settings.mix = "REPLACE"
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    first, second = sorted(score_strips(timeline), key=lambda s: s.name)
    assert first.mute and not second.mute and "take2" in second.name
    assert talking_sound.mute  # Replace: the music alone


def test_duck_through_the_cli(addon, timeline):
    """Mix "Duck": the job asks `vbgm score --mix duck` and keyframes the strip from the
    report's gain curve."""
    vbgm = vbgm_command()
    if "--duck-depth" not in subprocess.run([vbgm, "score", "--help"], capture_output=True, text=True).stdout:
        pytest.skip("this vbgm has no --mix duck / --duck-depth yet")
    bpy.ops.vbgm.refresh_choices()
    settings = timeline.vbgm
    settings.genre, settings.mix, settings.duck_depth_db = addon.properties._choices["genres"][0][0], "DUCK", -18.0
    assert bpy.ops.vbgm.generate_score() == {"FINISHED"}
    (strip,) = score_strips(timeline)
    timeline.frame_set(SPAN[0] + 3 * FPS)
    assert strip.volume == pytest.approx(10 ** (-18 / 20), rel=1e-2)
    timeline.frame_set(SPAN[0] + 7 * FPS)
    assert strip.volume == pytest.approx(1.0, rel=1e-3)
