"""Repetition figures (metrics/repetition.py) on hand-built MIDI with known answers."""

import math

import miditoolkit
import pytest

from vbgm_core.metrics.repetition import (
    bar_onsets,
    best_matches,
    exact_copy_share,
    jaccard,
    middle_window,
    repetition,
)

TPB = 480
SIXTEENTH = TPB // 4
BAR = 16 * SIXTEENTH


def song(bars, program=0, is_drum=False, tpb=TPB, extra=()):
    """A one-track MidiFile: ``bars`` is a list of bars, each a list of (16th position, pitch).

    ``extra`` adds tracks: (program, is_drum, bars) triples in the same form.
    """
    midi = miditoolkit.MidiFile(ticks_per_beat=tpb)
    sixteenth = tpb // 4
    for prog, drum, track_bars in ((program, is_drum, bars), *extra):
        notes = [miditoolkit.Note(90, pitch, (16 * b + pos) * sixteenth, (16 * b + pos + 1) * sixteenth)
                 for b, bar in enumerate(track_bars) for pos, pitch in bar]
        midi.instruments.append(miditoolkit.Instrument(program=prog, is_drum=drum, notes=notes))
    return midi


A = [(0, 60), (4, 64), (8, 67), (12, 72)]
B = [(2, 50), (6, 52), (10, 53), (14, 55)]


def test_identical_bars_repeat_fully_and_are_exact_copies():
    midi = song([A, A, A, A])
    assert best_matches(midi) == [1.0, 1.0, 1.0]
    assert repetition(midi) == 1.0
    assert exact_copy_share(midi) == 1.0


def test_disjoint_bars_do_not_repeat():
    midi = song([A, B, [(1, 70)], [(3, 71), (5, 72)]])
    assert repetition(midi) == 0.0
    assert exact_copy_share(midi) == 0.0


def test_half_overlap_is_the_exact_jaccard_value():
    # two of four onsets shared: |A ∩ B| = 2, |A ∪ B| = 6
    half = A[:2] + B[:2]
    assert jaccard(set(A), set(half)) == pytest.approx(2 / 6)
    assert best_matches(song([A, half])) == [pytest.approx(1 / 3)]
    # the best earlier bar counts, not the last one: A, B, then a bar equal to A but one onset
    assert best_matches(song([A, B, A[:3]])) == [0.0, pytest.approx(3 / 4)]


def test_same_pitch_at_another_position_or_instrument_is_another_onset():
    assert repetition(song([[(0, 60)], [(1, 60)]])) == 0.0
    # guitar (program 30) and piano (program 0) on the same note: two onsets, not one
    onsets = bar_onsets(song([[(0, 60)]], extra=[(30, False, [[(0, 60)]])]))
    assert onsets == [frozenset({("piano", 60, 0), ("guitar", 60, 0)})]
    # two tracks of one group on the same note: one onset
    assert len(bar_onsets(song([[(0, 60)]], extra=[(1, False, [[(0, 60)]])]))[0]) == 1


def test_empty_bars_are_skipped_and_match_nothing():
    # bar 1 is silent: not scored, and bar 2 matches bar 0 across it
    assert best_matches(song([A, [], A])) == [1.0]
    # two silent bars are not repetition; the first bar that plays has nothing to repeat
    assert best_matches(song([[], [], A, B])) == [0.0]
    assert math.isnan(repetition(song([[], [], A])))
    assert math.isnan(exact_copy_share(song([[], A])))


def test_drums_and_pitched_parts_are_measured_apart():
    kick_snare = [(0, 36), (4, 38), (8, 36), (12, 38)]
    midi = song([A, B, [(1, 70)]], extra=[(0, True, [kick_snare] * 3)])
    assert repetition(midi, "drums") == 1.0
    assert repetition(midi, "pitched") == 0.0
    # drums alone: nothing pitched to score
    assert math.isnan(repetition(song([kick_snare] * 3, is_drum=True), "pitched"))
    with pytest.raises(ValueError, match="group"):
        repetition(midi, "piano")


def test_the_look_back_stops_at_the_window():
    distinct = [[(pos, 40 + i)] for i, pos in enumerate(range(12))]
    bars = distinct[:7] + [distinct[1]] + distinct[8:]   # bar 7 copies bar 1
    midi = song(bars)
    assert exact_copy_share(midi, window_bars=12) == pytest.approx(1 / 11)
    # windows 0-5 and 6-11: bar 1 is outside bar 7's look-back
    assert exact_copy_share(midi, window_bars=6) == 0.0
    assert len(best_matches(midi, window_bars=6)) == 10


def test_only_whole_windows_count_unless_the_piece_is_shorter():
    # 8 bars, windows of 6: bars 6-7 (a copy) are left out
    midi = song([A, B, [(1, 70)], [(3, 71)], [(5, 72)], [(7, 73)], A, A])
    assert repetition(midi, window_bars=6) == 0.0
    assert len(best_matches(midi, window_bars=6)) == 5
    # a 3-bar piece is one window
    assert best_matches(song([A, B, A]), window_bars=6) == [0.0, 1.0]


def test_exact_copies_are_counted_near_copies_are_not():
    near = A[:3] + [(13, 72)]
    midi = song([A, A, near, A, B])
    # A: copy; near: 3/5; A: copy; B: 0
    assert best_matches(midi) == [1.0, pytest.approx(3 / 5), 1.0, 0.0]
    assert exact_copy_share(midi) == 0.5
    assert repetition(midi) == pytest.approx((1 + 0.6 + 1 + 0) / 4)


def test_onsets_are_rounded_to_sixteenths_at_any_resolution():
    midi = song([A, A], tpb=96)
    midi.instruments[0].notes[4].start += 5      # 5 of 24 ticks late: still the same 16th
    assert repetition(midi) == 1.0
    midi.instruments[0].notes[5].start += 13     # over half a 16th: the next position
    assert repetition(midi) == pytest.approx(3 / 5)


def test_middle_window_is_the_middle_of_the_playing_bars():
    # 2 silent bars, then 20 bars, bar k (from the first that plays) has pitch 40 + k
    midi = song([[], []] + [[(0, 40 + k)] for k in range(20)])
    midi.tempo_changes = [miditoolkit.TempoChange(100, 0), miditoolkit.TempoChange(140, 8 * BAR)]
    window = middle_window(midi, bars=6)
    notes = window.instruments[0].notes
    assert [n.pitch for n in notes] == [47, 48, 49, 50, 51, 52]   # bars 7..12 of 20
    assert [n.start for n in notes] == [k * BAR for k in range(6)]
    assert window.ticks_per_beat == TPB and window.tempo_changes[0].tempo == 140
    assert best_matches(window, window_bars=6) == [0.0] * 5
    # a song shorter than the window is kept whole
    assert [n.pitch for n in middle_window(song([A, B]), bars=6).instruments[0].notes] == \
        [p for _, p in A + B]


def test_middle_window_takes_a_note_that_rounds_onto_its_first_bar():
    midi = song([[(0, 40 + k)] for k in range(8)])
    midi.instruments[0].notes.append(miditoolkit.Note(90, 90, BAR - 10, BAR + 100))
    window = middle_window(midi, bars=6)     # bars 1..6
    assert {(n.pitch, n.start) for n in window.instruments[0].notes if n.start == 0} == \
        {(41, 0), (90, 0)}
