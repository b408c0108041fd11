"""The MoviePy 1.x idiom ``clip.fx(cmt_soundtrack, genre="pop")``, end to end.

Runs in the MoviePy 1.0.3 venv only (``scripts/setup_moviepy1_venv.sh``, then
``.venv-moviepy1/bin/python -m pytest tests/test_moviepy1.py``); skipped under MoviePy 2.
"""

import numpy as np
import pytest

editor = pytest.importorskip(
    "moviepy.editor", reason="needs MoviePy 1.x (moviepy.editor): run it with "
    ".venv-moviepy1/bin/python after scripts/setup_moviepy1_venv.sh")

from vbgm_moviepy import CMTSoundtrack, cmt_soundtrack  # noqa: E402

from vbgm_core.api import SAMPLE_RATE  # noqa: E402
from vbgm_core.audio.mix import gain_to_db  # noqa: E402
from vbgm_core.errors import InputError  # noqa: E402
from vbgm_core.media import media_duration  # noqa: E402


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("VBGM_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def clip(sample_clip):
    clip = editor.VideoFileClip(str(sample_clip))  # Big Buck Bunny, 5.3 s, with audio
    yield clip
    clip.close()


def test_clip_fx_end_to_end(clip, tiny_model, tmp_path):
    sub = clip.subclip(1, 3.5)
    scored = sub.fx(cmt_soundtrack, genre="pop", seed=4, model=tiny_model, progress=False)
    assert scored.cmt_info.source == "frames" and not scored.cmt_info.cache_hit
    assert scored.cmt_info.rhythm.duration_s == pytest.approx(2.5)
    assert len(scored.audio.array) == round(sub.duration * SAMPLE_RATE)
    out = tmp_path / "out.mp4"
    scored.write_videofile(str(out), fps=25, codec="libx264", preset="ultrafast",
                           audio_codec="aac", logger=None)
    assert abs(media_duration(out, "audio") - sub.duration) <= 1 / 25

    again = sub.fx(cmt_soundtrack, genre="pop", seed=4, model=tiny_model, progress=False)
    assert again.cmt_info.cache_hit and again.cmt_info.key == scored.cmt_info.key
    np.testing.assert_array_equal(again.audio.array, scored.audio.array)


def soundarray(audio_clip):
    # Our own chunks: MoviePy 1.0.3's to_soundarray stacks its chunks with
    # np.vstack(generator), an error in NumPy 2, and one big chunk overflows a file reader's
    # 200,000-sample buffer.
    return np.vstack(list(audio_clip.iter_chunks(fps=SAMPLE_RATE, chunk_duration=1.0)))


def test_mix_concatenation_and_file_path(clip, tiny_model, tmp_path):
    edit = editor.concatenate_videoclips([clip.subclip(0, 1.5), clip.subclip(3.5, 5)])
    music = edit.fx(cmt_soundtrack, seed=1, model=tiny_model, progress=False)
    mixed = edit.fx(cmt_soundtrack, seed=1, mix="mix", original_gain_db=gain_to_db(0.5),
                    model=tiny_model, progress=False)
    assert mixed.cmt_info.cache_hit  # the gain of the original is applied after the cache
    assert mixed.cmt_info.source == "frames"
    assert mixed.cmt_info.rhythm.duration_s == pytest.approx(edit.duration) == pytest.approx(3.0)
    a, b, original = (soundarray(c.audio) for c in (music, mixed, edit))
    assert np.abs(original).max() > 0.01
    n = min(len(a), len(b), len(original))
    np.testing.assert_allclose(b[:n], a[:n] + 0.5 * original[:n], atol=2e-3)
    out = tmp_path / "mixed.mp4"
    mixed.write_videofile(str(out), fps=25, codec="libx264", preset="ultrafast",
                          audio_codec="aac", logger=None)
    assert abs(media_duration(out, "audio") - edit.duration) <= 1 / 25

    whole = clip.fx(cmt_soundtrack, seed=1, model=tiny_model, progress=False)
    assert whole.cmt_info.source == "file"
    assert CMTSoundtrack(seed=1, model=tiny_model, progress=False).apply(clip).cmt_info.cache_hit


def test_bad_input_is_a_clear_error(clip, tiny_model):
    with pytest.raises(InputError, match="got an audio clip"):
        cmt_soundtrack(clip.audio, model=tiny_model)
    with pytest.raises(InputError, match="has no duration"):
        editor.ImageClip(np.zeros((16, 16, 3), np.uint8)).fx(cmt_soundtrack, model=tiny_model)
    with pytest.raises(InputError, match="unknown genre"):
        clip.fx(cmt_soundtrack, genre="jazz", model=tiny_model)


def test_duck_under_an_edited_clips_speech(shared, tiny_model):
    # The speech is read from the edited clip's audio chunk by chunk (MoviePy 1.0.3's
    # one-call to_soundarray fails under NumPy 2).
    talking = editor.VideoFileClip(str(shared / "videos" / "talking.mp4"))
    try:
        clip = talking.subclip(0, 10)  # narration from 2.0 s to 7.65 s
        options = dict(seed=2, model=tiny_model, progress=False)
        mixed = clip.fx(cmt_soundtrack, mix="mix", **options)
        ducked = clip.fx(cmt_soundtrack, mix="duck", **options)
        assert ducked.cmt_info.cache_hit
        speech = ducked.cmt_info.speech
        start, end = speech[0][0], speech[-1][1]
        assert abs(start - 2.0) < 0.1 and 7.0 < end < 8.0, speech
        a, b = soundarray(mixed.audio), soundarray(ducked.audio)
        n = min(len(a), len(b))
        t = np.arange(n) / SAMPLE_RATE
        calm = (t < start - 0.35) | (t > end + 0.85)  # outside the speech and its ramps
        np.testing.assert_allclose(a[:n][calm], b[:n][calm], atol=1e-6)
        assert np.abs(a[:n] - b[:n])[~calm].max() > 0.01
    finally:
        talking.close()
