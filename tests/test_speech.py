"""Speech detection with the real Silero VAD on real clips (../shared/videos)."""

import json
import subprocess

import numpy as np
import pytest
import torch
from conftest import SHARED

from vbgm_core.audio.speech import detect_speech, detect_speech_samples, segments_iou
from vbgm_core.errors import InputError
from vbgm_core.media import ffmpeg_executable


@pytest.fixture(scope="module")
def talking():
    path = SHARED / "videos" / "talking.mp4"
    if not path.is_file():
        pytest.skip(f"needs {path} (the shared data folder is absent)")
    truth = json.loads(path.with_suffix(".json").read_text())["speech"]
    return path, [(s["start_s"], s["end_s"]) for s in truth]


def decode(path, rate=44100):
    """A file's audio as float32 [n, 2] at ``rate``, decoded by ffmpeg."""
    raw = subprocess.run([ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vn",
                          "-ac", "2", "-ar", str(rate), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


def test_segments_iou():
    assert segments_iou([(0, 2)], [(1, 3)]) == pytest.approx(1 / 3)
    assert segments_iou([(0, 1), (0.5, 2)], [(0, 2)]) == pytest.approx(1.0)  # overlaps merged
    assert segments_iou([], [(0, 1)]) == 0.0 and segments_iou([], []) == 1.0


def test_narration_is_found_where_it_is(talking):
    path, truth = talking
    threads = torch.get_num_threads()
    found = detect_speech(path)
    assert segments_iou(found, truth) >= 0.8, found
    assert torch.get_num_threads() == threads  # silero_vad's import sets 1; undone
    assert found == detect_speech(path)  # deterministic
    assert all(s < e for s, e in found) and found == sorted(found)


def test_a_range_is_searched_in_its_own_time(talking):
    path, truth = talking
    found = detect_speech(path, 5.0, 15.0)
    shifted = [(max(s - 5, 0.0), min(e - 5, 10.0)) for s, e in truth if e > 5 and s < 15]
    assert max(e for _, e in found) <= 10.0 + 1e-6
    assert segments_iou(found, shifted) >= 0.8, (found, shifted)


def test_samples_give_what_the_file_gives(talking):
    path, _ = talking
    audio = decode(path)
    assert detect_speech_samples(audio, 44100) == detect_speech(path)
    assert detect_speech_samples(audio[:, 0], 44100)  # mono works too
    assert detect_speech_samples(np.zeros((0, 2), np.float32), 44100) == []


def test_loud_music_and_noise_are_not_speech(shared):
    # chaplin.mp4's score is louder than talking.mp4's narration (mean -18.8 vs -28.4 dBFS):
    # an energy threshold would duck under all of it; the VAD finds no voice.
    chaplin = shared / "videos" / "chaplin.mp4"
    assert np.sqrt(np.mean(decode(chaplin) ** 2)) > 0.05
    assert detect_speech(chaplin) == []
    noise = 0.3 * np.random.default_rng(0).standard_normal((5 * 44100, 2)).astype(np.float32)
    assert detect_speech_samples(noise, 44100) == []


def test_silent_files_and_bad_input(shared, tmp_path):
    assert detect_speech(shared / "videos" / "bikes.mp4") == []  # no audio stream
    with pytest.raises(InputError, match="not found"):
        detect_speech(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="empty"):
        detect_speech(shared / "videos" / "chaplin.mp4", 3.0, 2.0)
