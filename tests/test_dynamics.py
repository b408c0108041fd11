"""Velocities (music/dynamics.py), held notes and the ring-out (music/articulation.py), and the
fitted tempo (video/tempo.py)."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.metrics import quality
from vbgm_core.music.articulation import fill_silences, ring_out
from vbgm_core.music.dynamics import apply_velocities, bar_loudness, dynamics_stats
from vbgm_core.music.finish import finish
from vbgm_core.music.harmony import HarmonyPlan
from vbgm_core.video.rhythm import Bar, VideoRhythm, VisualBeat
from vbgm_core.video.tempo import fit_to_duration

Q = 480


def _midi(tracks, bpm=120.0):
    midi = miditoolkit.MidiFile(ticks_per_beat=Q)
    midi.tempo_changes = [miditoolkit.TempoChange(bpm, 0)]
    for name, program, drum, notes in tracks:
        inst = miditoolkit.Instrument(program, is_drum=drum, name=name)
        inst.notes = [miditoolkit.Note(80, p, int(s * Q), int(e * Q)) for p, s, e in notes]
        midi.instruments.append(inst)
    return midi


def _rhythm(densities, beats=(), bpm=120.0):
    bar_s = 240 / bpm
    return VideoRhythm(duration_s=len(densities) * bar_s, fps=25.0, tempo_bpm=bpm,
                       n_bars=len(densities),
                       bars=[Bar(k * bar_s, 1.0, d) for k, d in enumerate(densities)],
                       visual_beats=list(beats), cuts=[], motion=[])


def _band(bars):
    every_8th = [(36 + 2 * (i % 2), i / 2, i / 2 + 0.1) for i in range(8 * bars)]
    chords = [(p, b, b + 1) for b in range(4 * bars) for p in (60, 64, 67)]
    bass = [(36, b, b + 1) for b in range(4 * bars)]
    return _midi([("drums", 0, True, every_8th), ("piano", 0, False, chords),
                  ("bass", 33, False, bass)])


def test_velocities_follow_the_picture_and_are_seeded():
    rhythm = _rhythm([2, 2, 14, 14], beats=[VisualBeat(1.0, 40, 1.0, 10, cut=True)])
    midi = apply_velocities(_band(4), rhythm, seed=1)
    assert quality.distinct_velocities(midi) >= 16
    loud = bar_loudness(midi, 4)
    assert loud[2] > loud[0] + 5            # busy picture, louder bars
    piano = midi.instruments[1].notes
    cut = [n.velocity for n in piano if n.start == 40 // 4 * Q]
    before = [n.velocity for n in piano if n.start == 36 // 4 * Q]
    assert min(cut) > max(before)           # the cut's lift
    again = apply_velocities(_band(4), rhythm, seed=1)
    other = apply_velocities(_band(4), rhythm, seed=2)
    vel = lambda m: [n.velocity for i in m.instruments for n in i.notes]
    assert vel(again) == vel(midi) and vel(other) != vel(midi)
    assert all(1 <= v <= 127 for v in vel(midi))


def test_levels_come_from_the_training_statistics():
    stats = dynamics_stats()
    assert set(stats) == {"drums", "piano", "guitar", "bass", "strings"}
    midi = apply_velocities(_band(4), _rhythm([8, 8, 8, 8]), seed=0)  # mid energy: no swell
    for inst in midi.instruments:
        mean = np.mean([n.velocity for n in inst.notes])
        assert abs(mean - stats[inst.name]["median_song_mean"]) < stats[inst.name]["within_song_sd"]


def test_fill_silences_holds_the_notes_before_a_gap():
    midi = _midi([("piano", 0, False, [(60, 0, 1), (64, 0, 0.5), (67, 4, 5)]),
                  ("drums", 0, True, [(36, 1.5, 1.6)])])
    assert quality.longest_silence(midi) == pytest.approx(1.2)  # 1.6 to 4 beats at 0.5 s
    fill_silences(midi, max_gap_s=1.0)
    piano = midi.instruments[0].notes
    assert piano[0].end == 4 * Q and piano[1].end == Q // 2  # the last-ending note is held
    assert quality.longest_silence(midi) < 0.5
    short = _midi([("piano", 0, False, [(60, 0, 1), (64, 2, 3)])])
    fill_silences(short, max_gap_s=1.0)
    assert short.instruments[0].notes[0].end == Q  # a 0.5 s rest stays a rest


def test_ring_out_closes_on_the_tonic_at_the_last_frame():
    # last bar (beats 4-8): C E G and a D; the video ends at 3.9 s (beat 7.8)
    midi = _midi([("piano", 0, False, [(48, 4, 5), (64, 4, 6), (67, 5, 6), (62, 6, 7.8)])])
    ring_out(midi, 3.9, tonic=0, mode="major")
    notes = {n.pitch: n for n in midi.instruments[0].notes}
    end = int(3.9 * 2 * Q)
    assert all(notes[p].end == end for p in (48, 64, 67))
    assert notes[62].end <= end - Q
    assert quality.final_chord(midi) == {0, 4, 7}
    assert quality.music_end_s(midi) == pytest.approx(3.9, abs=1e-3)


def test_finish_composes_and_annotates():
    rhythm = _rhythm([1, 1, 1, 1])
    plan = HarmonyPlan(0, "major", 4, [(0, 0), (48, 4)])
    midi = finish(_band(4), rhythm, plan, seed=0)
    assert midi.markers[0].text == "chord C" and midi.key_signature_changes[0].key_name == "C"
    assert quality.music_end_s(midi) == pytest.approx(rhythm.duration_s, abs=1e-3)
    assert quality.distinct_velocities(midi) >= 16


@pytest.mark.parametrize("bpm, duration, want_bars", [(104.0, 20.0, 9), (128.0, 30.0, 16),
                                                      (97.0, 10.0, None)])
def test_fitted_tempo_ends_on_a_bar_line_or_beat(bpm, duration, want_bars):
    fitted = fit_to_duration(bpm, duration)
    assert abs(fitted / bpm - 1) <= 0.04
    units = fitted * duration / 60
    if want_bars:
        assert units / 4 == pytest.approx(want_bars)
    else:  # 10 s at 97 BPM is 4.04 bars... within 4%: 4 bars; else a whole beat
        assert units == pytest.approx(round(units))
    assert fit_to_duration(100.0, 0.3) == 100.0  # nothing near: the tempo stays
