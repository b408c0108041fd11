"""Mastering with pedalboard + pyloudnorm on real audio from the real synthesizer."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.audio.master import integrated_loudness, master, true_peak_db
from vbgm_core.audio.render import render_audio
from vbgm_core.errors import InputError

SR = 22050


@pytest.fixture(scope="module")
def raw():
    """A quiet piano phrase, peak-normalised only."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    piano = miditoolkit.Instrument(0)
    for beat in range(16):
        for pitch in (60, 64, 67):
            piano.notes.append(miditoolkit.Note(40 + 5 * (beat % 4), pitch + beat % 5,
                                                beat * 480, beat * 480 + 400))
    midi.instruments = [piano]
    return render_audio(midi, SR, duration_s=8.0, loudness=None)


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_reaches_target_under_the_true_peak_ceiling(raw, target):
    out = master(raw, SR, target)
    assert out.shape == raw.shape and out.dtype == np.float32
    assert abs(integrated_loudness(out, SR) - target) <= 0.5
    assert true_peak_db(out, SR) <= -1.0
    assert np.abs(out).max() < 1.0


def test_deterministic_and_silence_stays_silent(raw):
    assert np.array_equal(master(raw, SR, -14.0), master(raw, SR, -14.0))
    silent = np.zeros((SR, 2), np.float32)
    assert not master(silent, SR, -14.0).any()


def test_refuses_bad_targets(raw):
    with pytest.raises(InputError, match="LUFS"):
        master(raw, SR, 3.0)
    with pytest.raises(InputError, match="dBTP"):
        master(raw, SR, -14.0, true_peak_dbtp=0.5)
