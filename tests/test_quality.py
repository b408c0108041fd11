"""Issue 15's statistics on hand-built MIDI and audio with known answers (music/quality.py)."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.metrics import quality

Q = 480  # ticks per beat; at 120 BPM a beat is 0.5 s


def _midi(tracks, bpm=120.0):
    """tracks: [(program, is_drum, [(pitch, start beat, end beat, velocity)])]."""
    midi = miditoolkit.MidiFile(ticks_per_beat=Q)
    midi.tempo_changes = [miditoolkit.TempoChange(bpm, 0)]
    for program, drum, notes in tracks:
        inst = miditoolkit.Instrument(program, is_drum=drum)
        inst.notes = [miditoolkit.Note(v, p, int(s * Q), int(e * Q)) for p, s, e, v in notes]
        midi.instruments.append(inst)
    return midi


def test_out_of_scale_share_by_note_time():
    # C major notes for 3 beats, one F# held 1 beat: 1/4 of the time is outside any scale
    # holding C, D, E, F, G... (the best fit is C major / A minor)
    notes = [(60, 0, 1, 80), (62, 1, 2, 80), (65, 2, 3, 80), (66, 3, 4, 80)]
    assert quality.out_of_scale_share(_midi([(0, False, notes)])) == pytest.approx(0.25)
    drums_only = _midi([(0, True, [(36, 0, 1, 100)])])
    assert np.isnan(quality.out_of_scale_share(drums_only))


def test_longest_silence_counts_every_gap_to_the_end():
    midi = _midi([(0, False, [(60, 0, 1, 80), (64, 4, 5, 80)]), (0, True, [(36, 2, 2.5, 90)])])
    # gaps: beats 1-2 (0.5 s), 2.5-4 (0.75 s), then 5 beats = 2.5 s to a 5 s video end
    assert quality.longest_silence(midi) == pytest.approx(0.75)
    assert quality.longest_silence(midi, duration_s=5.0) == pytest.approx(2.5)


def test_single_onset_bars_and_velocities_and_bass_register():
    notes = [(60, 0, 1, 80), (64, 1, 2, 81),   # bar 0: two onsets
             (60, 4, 5, 82),                   # bar 1: one
             (60, 12, 13, 82)]                 # bar 3: one (bar 2 empty)
    bass = [(40, 0, 1, 90), (74, 1, 2, 90), (72, 2, 3, 90), (76, 3, 4, 90)]
    midi = _midi([(0, False, notes), (33, False, bass)])
    assert quality.single_onset_bar_share(midi) == pytest.approx(2 / 4)
    assert quality.distinct_velocities(midi) == 4          # 80, 81, 82, 90
    assert quality.bass_above_c5_share(midi) == pytest.approx(2 / 4)  # 74, 76 (C5 = 72 is not)


def test_final_chord_and_end_gap():
    closing = [(48, 0, 4, 80), (64, 2, 4, 80), (67, 3, 4, 80), (62, 0, 3.5, 80)]
    midi = _midi([(0, False, closing)])
    assert quality.final_chord(midi) == {0, 4, 7}           # the D stopped before the end
    assert quality.is_tonic_chord({0, 4, 7}, 0, "major")
    assert quality.is_tonic_chord({0, 7}, 0, "major")
    assert not quality.is_tonic_chord({0, 4, 7}, 7, "major")  # C major is IV in G
    assert not quality.is_tonic_chord({4, 7}, 0, "major")     # no root
    q = quality.midi_quality(midi, duration_s=2.25, key=(0, "major"))
    assert q["end_gap_s"] == pytest.approx(0.25) and q["final_chord_tonic"]


def test_audio_loudness_peak_and_clipping():
    sr = 48000
    t = np.arange(sr * 5) / sr
    # BS.1770: a 997 Hz full-scale sine in one channel reads -3.01 LUFS; at -20 dBFS, -23.01
    sine = 10 ** (-20 / 20) * np.sin(2 * np.pi * 997 * t)
    q = quality.audio_quality(np.stack([sine, np.zeros_like(sine)], 1), sr)
    assert q["loudness_lufs"] == pytest.approx(-23.01, abs=0.05)
    assert q["true_peak_dbtp"] == pytest.approx(-20.0, abs=0.05) and q["clipped_samples"] == 0
    # a sine at fs/4 sampled at 45 degrees: samples at 0.707 (-3 dBFS), true peak 1.0 (0 dBTP)
    quarter = np.sin(2 * np.pi * 0.25 * np.arange(4800) + np.pi / 4) * 0.999
    assert 20 * np.log10(np.abs(quarter).max()) == pytest.approx(-3.0, abs=0.05)
    assert quality.audio_quality(quarter, sr)["true_peak_dbtp"] == pytest.approx(0.0, abs=0.2)
    clipped = np.clip(2 * sine, -1, 1)
    assert quality.audio_quality(clipped, sr)["clipped_samples"] == 0  # 2 x 0.1 stays under
    assert quality.audio_quality(np.clip(20 * sine, -1, 1), sr)["clipped_samples"] > 0
