"""The MoviePy 2 effect on real clips: real MoviePy, the tiny trained model, the real synthesizer.

MoviePy 1.x (``clip.fx``) is tested by tests/test_moviepy1.py in its own venv.
"""

import importlib.util
import json

import numpy as np
import pytest

moviepy = pytest.importorskip("moviepy", minversion="2", reason="needs MoviePy 2 (the main venv)")

from moviepy import (  # noqa: E402
    AudioClip,
    ColorClip,
    CompositeVideoClip,
    ImageClip,
    VideoFileClip,
    concatenate_videoclips,
)
from vbgm_moviepy import CMTSoundtrack, cmt_soundtrack  # noqa: E402

from vbgm_core.api import SAMPLE_RATE  # noqa: E402
from vbgm_core.audio.mix import db_to_gain, gain_to_db  # noqa: E402
from vbgm_core.audio.speech import segments_iou  # noqa: E402
from vbgm_core.errors import InputError, ModelLoadError  # noqa: E402
from vbgm_core.media import media_duration  # noqa: E402


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("VBGM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def chaplin(shared):
    clip = VideoFileClip(str(shared / "videos" / "chaplin.mp4"))  # 640x360, 25 fps, with audio
    yield clip
    clip.close()


class Stages:
    """A progress callback that records the stages it saw."""

    def __init__(self):
        self.seen = []

    def __call__(self, stage, fraction):
        if stage not in self.seen:
            self.seen.append(stage)


def samples(clip):
    """The clip's audio at 44.1 kHz, [n, channels]."""
    return clip.audio.to_soundarray(fps=SAMPLE_RATE)


def write(clip, path):
    clip.write_videofile(str(path), fps=clip.fps or 25, codec="libx264", preset="ultrafast",
                         audio_codec="aac", logger=None)
    return path


def test_effect_on_a_subclip_writes_an_mp4_with_the_clips_length(chaplin, tiny_model, tmp_path):
    clip = chaplin.subclipped(2, 5)
    effect = CMTSoundtrack(genre="rock", seed=3, model=tiny_model, progress=False)
    assert isinstance(effect, moviepy.Effect)
    scored = clip.with_effects([effect])
    info = scored.cmt_info
    assert info.source == "frames" and not info.cache_hit  # a subclip is read frame by frame
    assert info.report["genre"] == "rock" and info.report["seed"] == 3
    assert info.rhythm.duration_s == pytest.approx(3.0)
    assert info.midi_path.is_file()
    # the bar lines an editor cuts to: every 4 beats of the piece's tempo, inside the clip
    bar_s = 240.0 / info.rhythm.tempo_bpm
    assert info.bar_times_s == pytest.approx([k * bar_s for k in range(len(info.bar_times_s))])
    assert info.bar_times_s[-1] < clip.duration <= info.bar_times_s[-1] + bar_s
    assert scored.audio.duration == pytest.approx(clip.duration)
    assert len(scored.audio.array) == round(clip.duration * SAMPLE_RATE)  # the music itself
    assert np.abs(samples(scored)).max() > 0.01  # music, not silence
    assert clip.audio is not None and clip.audio is not scored.audio  # the input clip is kept

    out = write(scored, tmp_path / "out.mp4")
    assert abs(media_duration(out, "audio") - clip.duration) <= 1 / 25
    assert abs(media_duration(out, "video") - clip.duration) <= 1 / 25


def test_function_on_a_concatenation_scores_the_edit(chaplin, shared, tiny_model, tmp_path):
    bikes = VideoFileClip(str(shared / "videos" / "bikes.mp4"))  # 640x272, no audio
    try:
        edit = concatenate_videoclips([chaplin.subclipped(1, 3), bikes.subclipped(4, 6)],
                                      method="compose")
        scored = cmt_soundtrack(edit, genre="pop", seed=1, model=tiny_model, progress=False)
        rhythm = scored.cmt_info.rhythm
        assert scored.cmt_info.source == "frames"
        assert rhythm.duration_s == pytest.approx(edit.duration) == pytest.approx(4.0)
        # The splice between the two sources is in the frames it read: the analysis finds it.
        assert any(abs(c - 2.0) <= 0.1 for c in rhythm.cuts), rhythm.cuts
        out = write(scored, tmp_path / "edit.mp4")
        assert abs(media_duration(out, "audio") - edit.duration) <= 1 / 25
    finally:
        bikes.close()


def test_unedited_file_clip_takes_the_file_path(sample_clip, tiny_model):
    clip = VideoFileClip(str(sample_clip))
    try:
        scored = cmt_soundtrack(clip, model=tiny_model, progress=False)
        assert scored.cmt_info.source == "file"
        assert len(scored.audio.array) == round(clip.duration * SAMPLE_RATE)
        assert scored.cmt_info.report["video"] == str(sample_clip)
    finally:
        clip.close()


@pytest.mark.parametrize("edit", ["speed", "composite"])
def test_speed_changed_and_composited_clips_are_read_as_edited(chaplin, tiny_model, edit):
    clip = chaplin.subclipped(2, 6)
    if edit == "speed":
        clip = clip.with_speed_scaled(2.0)  # 4 s of film in 2 s
    else:
        box = ColorClip((200, 100), (255, 0, 0), duration=2).with_position((50, 50))
        clip = CompositeVideoClip([clip.subclipped(0, 2), box])
    scored = cmt_soundtrack(clip, seed=1, model=tiny_model, progress=False)
    assert scored.cmt_info.source == "frames"
    assert scored.cmt_info.rhythm.duration_s == pytest.approx(clip.duration) == pytest.approx(2)
    assert len(scored.audio.array) == round(2 * SAMPLE_RATE)
    if edit == "speed":  # the same film at twice the speed: the motion measured per second doubles
        normal = cmt_soundtrack(chaplin.subclipped(2, 6), seed=1, model=tiny_model, progress=False)
        ratio = (np.mean([f for _, f in scored.cmt_info.rhythm.motion])
                 / np.mean([f for _, f in normal.cmt_info.rhythm.motion]))
        assert 1.5 < ratio < 2.5, ratio


def test_original_audio_is_mixed_under_the_music(chaplin, tiny_model):
    clip = chaplin.subclipped(0, 2)
    options = dict(seed=2, model=tiny_model, progress=False)
    music = samples(cmt_soundtrack(clip, **options))
    mixed = cmt_soundtrack(clip, mix="mix", original_gain_db=-6.0, music_gain_db=-2.0,
                           **options)
    assert mixed.cmt_info.cache_hit  # the mix is applied after the cache
    assert mixed.cmt_info.report["options"]["mix"] == "mix"
    assert mixed.cmt_info.report["speech"] is None
    mixed = samples(mixed)
    original = samples(clip)
    assert np.abs(original).max() > 0.01  # the film's own soundtrack is there to mix
    n = min(len(mixed), len(original))
    assert abs(len(mixed) - len(music)) <= 1
    np.testing.assert_allclose(mixed[:n], db_to_gain(-2.0) * music[:n]
                               + db_to_gain(-6.0) * original[:n], atol=2e-3)
    # The linear gains of before still work, with a warning.
    with pytest.warns(DeprecationWarning) as caught:
        old = cmt_soundtrack(clip, original_audio=0.5, volume=0.8, **options)
    assert sorted(str(w.message).split("(")[1].split("=")[0] for w in caught) == [
        "original_audio", "volume"]
    assert old.cmt_info.report["options"]["original_gain_db"] == pytest.approx(gain_to_db(0.5))
    np.testing.assert_allclose(samples(old)[:n], 0.8 * music[:n] + 0.5 * original[:n],
                               atol=2e-3)


@pytest.fixture
def talking(shared):
    path = shared / "videos" / "talking.mp4"  # narration at 2.0-7.65 s and 11.5-16.45 s
    truth = [(s["start_s"], s["end_s"])
             for s in json.loads(path.with_suffix(".json").read_text())["speech"]]
    clip = VideoFileClip(str(path))
    yield clip, truth
    clip.close()


def test_duck_lowers_the_music_under_the_clips_speech(talking, tiny_model):
    clip, truth = talking
    clip = clip.subclipped(0, 10)  # an edited clip: its speech is read from its own audio
    options = dict(seed=5, model=tiny_model, progress=False)
    mixed = cmt_soundtrack(clip, mix="mix", **options)
    ducked = cmt_soundtrack(clip, mix="duck", **options)
    info = ducked.cmt_info
    assert info.cache_hit and info.key == mixed.cmt_info.key  # the same music
    assert segments_iou(info.speech, [(s, min(e, 10.0)) for s, e in truth if s < 10]) >= 0.8
    assert info.report["speech"][0]["start_s"] == pytest.approx(info.speech[0][0], abs=1e-3)
    assert min(db for _, db in info.report["gain_db"]) == -12.0

    a, b = samples(mixed), samples(ducked)
    n = min(len(a), len(b))
    diff, times = a[:n] - b[:n], np.arange(n) / SAMPLE_RATE
    inside, near = np.zeros(n, bool), np.zeros(n, bool)
    for s, e in info.speech:
        inside |= (times >= s) & (times < e)
        near |= (times >= s - 0.3) & (times < e + 0.8)
    music = samples(cmt_soundtrack(clip, **options))[:n]  # mix="replace": the music alone
    assert np.sqrt(np.mean(music[inside] ** 2)) > 0.01
    np.testing.assert_allclose(diff[~near], 0.0, atol=1e-6)  # the same outside speech
    # inside, the difference is the music times (1 - the ducked gain)
    np.testing.assert_allclose(diff[inside], music[inside] * (1 - db_to_gain(-12.0)), atol=2e-3)


def test_duck_on_an_unedited_file_clip_reads_its_file(talking, tiny_model):
    clip, truth = talking
    scored = cmt_soundtrack(clip, mix="duck", duck_depth_db=-18.0, duck_attack_s=0.0,
                            seed=1, model=tiny_model, progress=False)
    info = scored.cmt_info
    assert info.source == "file" and segments_iou(info.speech, truth) >= 0.8
    # a zero attack is a step down at the first word: the curve's lowest level is -18 dB there
    first = info.speech[0][0]
    assert info.gain_curve.gains([first - 1e-3, first])[1] == pytest.approx(db_to_gain(-18.0))
    assert info.gain_curve.gains([first - 1e-3])[0] == pytest.approx(1.0)


def test_cuts_between_composited_pieces_are_cuts_in_the_rhythm(chaplin, shared, sample_clip,
                                                                tiny_model):
    bikes = VideoFileClip(str(shared / "videos" / "bikes.mp4"))
    bunny = VideoFileClip(str(sample_clip))
    try:
        edit = CompositeVideoClip([chaplin.subclipped(1, 3),
                                   bikes.subclipped(4, 6).with_start(2),
                                   bunny.subclipped(1, 3).with_start(4)])
        scored = cmt_soundtrack(edit, seed=1, model=tiny_model, progress=False)
        cuts = scored.cmt_info.rhythm.cuts
        assert scored.cmt_info.rhythm.duration_s == pytest.approx(6.0)
        for boundary in (2.0, 4.0):  # where one piece gives way to the next
            assert any(abs(c - boundary) <= 0.1 for c in cuts), cuts
    finally:
        bikes.close()
        bunny.close()


def test_second_call_is_a_cache_hit_and_the_seed_fixes_the_samples(chaplin, tiny_model,
                                                                  cache_in_tmp):
    clip = chaplin.subclipped(3, 5)
    runs = []
    for _ in range(2):
        stages = Stages()
        scored = clip.with_effects([CMTSoundtrack(seed=7, model=tiny_model, progress=stages)])
        runs.append((scored, stages.seen))
    (first, first_stages), (second, second_stages) = runs
    assert not first.cmt_info.cache_hit and "generate" in first_stages
    assert second.cmt_info.cache_hit and second_stages == ["read"]  # frames digested, no music
    assert second.cmt_info.key == first.cmt_info.key
    assert (cache_in_tmp / "moviepy" / first.cmt_info.key / "audio.npy").is_file()
    np.testing.assert_array_equal(samples(first), samples(second))

    # Without the cache the same seed makes the same samples again; another seed, other music.
    fresh = cmt_soundtrack(clip, seed=7, model=tiny_model, progress=False, cache=False)
    assert not fresh.cmt_info.cache_hit and fresh.cmt_info.key is None
    np.testing.assert_array_equal(samples(fresh), samples(first))
    other = cmt_soundtrack(clip, seed=8, model=tiny_model, progress=False)
    assert other.cmt_info.key != first.cmt_info.key
    assert not np.array_equal(samples(other), samples(first))


def test_changed_frames_change_the_key(chaplin, tiny_model):
    clip = chaplin.subclipped(3, 5)
    first = cmt_soundtrack(clip, seed=7, model=tiny_model, progress=False)
    mirrored = clip.image_transform(lambda frame: frame[:, ::-1])
    second = cmt_soundtrack(mirrored, seed=7, model=tiny_model, progress=False)
    assert not second.cmt_info.cache_hit and second.cmt_info.key != first.cmt_info.key


@pytest.mark.parametrize("make, message", [
    (lambda: ImageClip(np.zeros((32, 32, 3), np.uint8)), "has no duration"),
    (lambda: ColorClip((32, 32), (0, 0, 0), duration=0), "nothing to score"),
    (lambda: ColorClip((32, 32), (0, 0, 0), duration=0.01).with_fps(25), "less than two frames"),
    (lambda: AudioClip(lambda t: np.sin(440 * t), duration=1, fps=44100), "got an audio clip"),
    (lambda: "clip.mp4", "needs a MoviePy video clip"),
])
def test_bad_clips_fail_before_any_work(make, message, tiny_model):
    stages = Stages()
    with pytest.raises(InputError, match=message):
        cmt_soundtrack(make(), model=tiny_model, progress=stages)
    assert stages.seen == []


def test_bad_options_fail_before_any_work(chaplin, tiny_model, tmp_path):
    clip = chaplin.subclipped(0, 2)
    stages = Stages()
    with pytest.raises(InputError, match="unknown genre 'jazz'.*pop, rock"):
        clip.with_effects([CMTSoundtrack(genre="jazz", model=tiny_model, progress=stages)])
    with pytest.raises(InputError, match="unknown instrument"):
        cmt_soundtrack(clip, instruments=["kazoo"], model=tiny_model, progress=stages)
    with pytest.raises(ModelLoadError, match="model file not found"):
        cmt_soundtrack(clip, model=tmp_path / "missing.safetensors", progress=stages)
    assert stages.seen == []
    with pytest.raises(InputError, match="outside"):
        CMTSoundtrack(control=1.5)
    with pytest.raises(InputError, match="tempo"):
        CMTSoundtrack(tempo=5)
    with pytest.raises(InputError, match="negative"), pytest.warns(DeprecationWarning):
        CMTSoundtrack(original_audio=-1)
    with pytest.raises(InputError, match="mix must be one of replace, mix, duck"):
        CMTSoundtrack(mix="blend")
    with pytest.raises(InputError, match="duck depth 6 is outside -60..0"):
        cmt_soundtrack(clip, mix="duck", duck_depth_db=6, model=tiny_model, progress=stages)
    with pytest.raises(InputError, match="duck release"):
        CMTSoundtrack(duck_release_s=-1)
    assert stages.seen == []


def test_batch_edit_example(sample_clip, tiny_model, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "batch_edit", sample_clip.parents[1] / "batch_edit.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "edit.mp4"
    argv = [str(sample_clip), "-o", str(out), "--cuts", "3", "--cut-length", "1.2",
            "--fade", "0.3", "--height", "180", "--seed", "2", "--model", str(tiny_model)]
    assert example.main(argv) == 0
    expected = 3 * 1.2 - 2 * 0.3  # three pieces overlapping by two crossfades
    assert abs(media_duration(out, "video") - expected) <= 1 / 25
    assert abs(media_duration(out, "audio") - expected) <= 1 / 25
    assert "music generated" in capsys.readouterr().err
    assert example.main(argv) == 2  # the output exists: refused without --overwrite
    assert example.main(argv + ["--overwrite"]) == 0
    assert "music from the cache" in capsys.readouterr().err
