"""Metrics on hand-made pieces with known values, and on real MIDI files from ../shared."""

import math
from pathlib import Path

import numpy as np
import pytest
from miditoolkit import Instrument, MidiFile, Note, TempoChange

from vbgm_core.errors import InputError
from vbgm_core.metrics import control, grid, musdr

TPB = 480
TICK = TPB // 4  # MIDI ticks per grid tick (a 16th note)


@pytest.fixture(scope="module")
def shared():
    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not (path / "data").is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path / "data"


def make_midi(notes, drums=(), tempo=120.0, dur=TICK):
    """A MIDI file from ``(grid_tick, pitch)`` pairs (piano) and drum ``(grid_tick, pitch)``."""
    midi = MidiFile(ticks_per_beat=TPB)
    midi.tempo_changes = [TempoChange(tempo, 0)]
    piano, kit = Instrument(0, name="piano"), Instrument(0, is_drum=True, name="drums")
    piano.notes = [Note(80, p, t * TICK, t * TICK + dur) for t, p in notes]
    kit.notes = [Note(80, p, t * TICK, t * TICK + TICK) for t, p in drums]
    midi.instruments = [piano, kit]
    return midi


def bars_with_onsets(per_bar_ticks, pitch=60):
    """Notes at the given in-bar ticks of successive bars."""
    return [(16 * b + t, pitch) for b, ticks in enumerate(per_bar_ticks) for t in ticks]


# ---------------------------------------------------------------- grid and tempo map


def test_ticks_to_seconds_follows_tempo_changes():
    midi = make_midi([])
    midi.tempo_changes = [TempoChange(120.0, 0), TempoChange(60.0, 2 * TPB)]
    secs = grid.ticks_to_seconds(midi, [0, TPB, 2 * TPB, 3 * TPB])
    assert np.allclose(secs, [0.0, 0.5, 1.0, 2.0])
    midi.tempo_changes = []  # no tempo event: the MIDI default, 120 BPM
    assert np.allclose(grid.ticks_to_seconds(midi, [TPB]), [0.5])


def test_ticks_to_seconds_matches_miditoolkit_on_a_file_with_61_tempo_changes(shared):
    midi = MidiFile(shared / "openmsx" / "midnight_snow_run.mid")
    assert len(midi.tempo_changes) > 10
    ticks = np.arange(0, midi.max_tick, 97)
    assert np.allclose(grid.ticks_to_seconds(midi, ticks), midi.get_tick_to_time_mapping()[ticks])


def test_grid_notes_rounds_to_sixteenths_and_counts_density_and_strength():
    midi = make_midi([])
    midi.instruments[0].notes = [Note(80, 60, 130, 200), Note(80, 64, 110, 200),
                                 Note(80, 67, 16 * TICK + 50, 2000)]
    notes = grid.grid_notes(midi)
    assert notes.tick.tolist() == [1, 1, 16]  # 130 and 110 MIDI ticks both round to grid tick 1
    assert grid.bar_densities(notes).tolist() == [1, 1]
    assert grid.tick_strengths(notes, 18)[[0, 1, 16]].tolist() == [0, 2, 1]


def test_negative_note_start_is_rejected():
    midi = make_midi([])
    midi.instruments[0].notes = [Note(80, 60, -5, 100)]
    with pytest.raises(InputError, match="negative start"):
        grid.grid_notes(midi)


# ---------------------------------------------------------------- H, GS


def test_single_pitch_class_has_zero_entropy_even_with_drums():
    notes = [(t, p) for t, p in zip(range(0, 64, 2), [48, 60, 72, 84] * 8)]  # all Cs
    drums = [(t, 35 + t % 10) for t in range(64)]  # varied drum "pitches" are not pitch classes
    midi = make_midi(notes, drums)
    assert musdr.pitch_class_entropy(midi) == 0.0
    assert musdr.pitch_class_entropy(midi, window_bars=1) == 0.0


def test_uniform_pitch_classes_have_maximum_entropy():
    midi = make_midi([(t, 60 + t % 12) for t in range(48)])
    assert musdr.pitch_class_entropy(midi, window_bars=3) == pytest.approx(math.log2(12))


def test_entropy_window_in_bars():
    midi = make_midi(bars_with_onsets([[0, 4, 8, 12]] * 1, 60) + [(16 + t, 62) for t in (0, 4, 8, 12)])
    assert musdr.pitch_class_entropy(midi, window_bars=1) == 0.0  # each bar one class
    assert musdr.pitch_class_entropy(midi, window_bars=2) == pytest.approx(1.0)  # C and D, equal
    assert musdr.pitch_class_entropy(midi, window_bars=4) == pytest.approx(1.0)  # falls back to 2 bars
    with pytest.raises(InputError):
        musdr.pitch_class_entropy(midi, window_bars=0)


def test_entropy_without_pitched_notes_is_nan():
    assert math.isnan(musdr.pitch_class_entropy(make_midi([], drums=[(0, 36)])))


def test_identical_bars_have_grooving_similarity_one():
    midi = make_midi(bars_with_onsets([[0, 3, 6, 10, 12]] * 8))
    assert musdr.grooving_similarity(midi) == 1.0


def test_grooving_similarity_known_value():
    # bars A = quarters (4 onsets), B = eighths (8 onsets, contains A), C = A: XOR(A,B) = 4
    quarters, eighths = [0, 4, 8, 12], list(range(0, 16, 2))
    midi = make_midi(bars_with_onsets([quarters, eighths, quarters]))
    # pairs (A,B) 0.75, (A,C) 1, (B,C) 0.75
    assert musdr.grooving_similarity(midi) == pytest.approx((0.75 + 1 + 0.75) / 3)
    # an empty bar in the middle counts: XOR with quarters = 4, with itself n/a
    midi = make_midi(bars_with_onsets([quarters, [], quarters]))
    assert musdr.grooving_similarity(midi) == pytest.approx((0.75 + 1 + 0.75) / 3)


def test_grooving_similarity_drums_switch():
    piano = bars_with_onsets([[0, 8]] * 2)
    drums = [(t, 36) for t in (4, 16 + 12)]  # different drum hits in the two bars
    midi = make_midi(piano, drums)
    assert musdr.grooving_similarity(midi, drums=False) == 1.0
    assert musdr.grooving_similarity(midi) == pytest.approx(1 - 2 / 16)


# ---------------------------------------------------------------- SI


def test_fitness_of_a_uniform_ssm_is_one_minus_length_over_n():
    # every row is similar to every frame: the optimal family tiles all 12 rows with paths
    scape = musdr.fitness_scape(np.ones((12, 12)), [3, 4])
    assert np.allclose(scape[0, :10], 0.75) and np.allclose(scape[1, :9], 2 / 3)
    assert np.all(scape[0, 10:] == 0) and np.all(scape[1, 9:] == 0)  # segments past the end


def test_fitness_without_repetition_is_zero():
    assert np.allclose(musdr.fitness_scape(np.eye(10), [1, 2, 5]), 0.0)


def test_fitness_finds_the_repeated_segment():
    # frames 0-3 repeat at 6-9; frames 4-5 are unrelated
    s = np.full((10, 10), -2.0)
    np.fill_diagonal(s, 1.0)
    for i in range(4):
        s[i, i + 6] = s[i + 6, i] = 1.0
    scape = musdr.fitness_scape(s, [4])[0]
    assert scape.argmax() in (0, 6)
    # two paths of 4 cells of 1 (one is the trivial self-match): score_n = (8 - 4) / 8,
    # coverage_n = (8 - 4) / 10
    assert scape.max() == pytest.approx(2 * 0.5 * 0.4 / 0.9)


def backtracked_fitness(s, start, length):
    """One segment's fitness the textbook way (FMP §4.3): accumulate, then backtrack the family."""
    n, cols = len(s), length + 1
    seg = s[:, start : start + length]
    d = np.full((n, cols), -np.inf)
    d[0, 0], d[0, 1] = 0.0, seg[0, 0]
    for r in range(1, n):
        d[r, 0] = max(d[r - 1, 0], d[r - 1, -1])
        d[r, 1] = d[r, 0] + seg[r, 0]
        for m in range(2, cols):
            preds = [d[r - 1, m - 1], d[r - 2, m - 1] if r > 1 else -np.inf,
                     d[r - 1, m - 2] if m > 2 else -np.inf]
            d[r, m] = seg[r, m - 1] + max(preds)
    paths, r = [], n - 1
    m, path = (cols - 1, [r]) if d[r, -1] >= d[r, 0] else (0, [])
    while r > 0 or m > 0:
        if m == 0:
            if d[r - 1, -1] > d[r - 1, 0]:
                r, m, path = r - 1, cols - 1, [r - 1]
            else:
                r -= 1
        elif m == 1:
            paths.append(path)
            m, path = 0, []
        else:
            preds = [(r - 1, m - 1)] + [(r - 2, m - 1)] * (r > 1) + [(r - 1, m - 2)] * (m > 2)
            r, m = max(preds, key=lambda p: d[p])  # first maximum, as the reference
            path.append(r)
    score = max(d[-1, 0], d[-1, -1])
    cells = sum(len(p) for p in paths)
    coverage = sum(max(p) - min(p) + 1 for p in paths)
    score_n, coverage_n = (score - length) / cells, (coverage - length) / n
    return 2 * score_n * coverage_n / (score_n + coverage_n + 1e-16)  # 0 for the trivial family


def test_batched_fitness_matches_backtracking_on_random_ssms():
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = np.where(rng.random((11, 11)) < 0.5, rng.random((11, 11)), -2.0)
        s = np.maximum(s, s.T)
        np.fill_diagonal(s, 1.0)
        lengths = [1, 2, 3, 5, 8]
        scape = musdr.fitness_scape(s, lengths)
        for i, length in enumerate(lengths):
            expected = [backtracked_fitness(s, start, length) for start in range(11 - length + 1)]
            assert np.allclose(scape[i, : len(expected)], expected)


def chord_piece(progression, repeats, seed=None):
    """One chord (root, major triad) per bar at 120 BPM (2 s per bar), held for the bar."""
    roots = list(progression) * repeats
    if seed is not None:
        roots = np.random.default_rng(seed).integers(0, 12, len(roots))
    notes = [(16 * b, 48 + r + i) for b, r in enumerate(roots) for i in (0, 4, 7)]
    return make_midi(notes, dur=16 * TICK)


def test_structureness_is_higher_for_repeated_music():
    repeated = chord_piece([0, 5, 7, 9, 2, 7, 0, 4], repeats=4)  # an 8-bar phrase 4 times, 64 s
    random = chord_piece([0] * 8, repeats=4, seed=1)
    si_rep, si_rand = musdr.structureness(repeated), musdr.structureness(random)
    assert 0 <= si_rand < si_rep <= 1
    assert si_rep > 0.3
    assert musdr.structureness(repeated) == si_rep  # deterministic


def test_structureness_of_a_piece_shorter_than_the_segments_is_zero():
    midi = chord_piece([0], repeats=1)  # 2 s
    assert musdr.structureness(midi, min_s=3, max_s=8) == 0.0
    with pytest.raises(InputError):
        musdr.structureness(midi, min_s=8, max_s=3)


# ---------------------------------------------------------------- control error


def test_density_error_is_zero_when_densities_match_the_targets():
    targets = [4, 8, 0, 16, 1]
    per_bar = [list(range(0, 16, 16 // d))[:d] if d else [] for d in targets]
    midi = make_midi(bars_with_onsets(per_bar), drums=[(0, 36), (16 + 8, 38)])  # drums on used ticks
    assert grid.bar_densities(grid.grid_notes(midi), 5).tolist() == targets
    assert control.density_error(midi, targets) == 0.0


def test_density_error_known_mismatch():
    midi = make_midi(bars_with_onsets([[0, 4, 8, 12], [0, 4, 8, 12]]))
    assert control.density_error(midi, [4, 8]) == pytest.approx(((8 - 4) / 16) ** 2 / 2)
    # a bar the music never reaches counts as density 0
    assert control.density_error(midi, [4, 4, 16]) == pytest.approx(1 / 3)
    with pytest.raises(InputError):
        control.density_error(midi, [17])


def test_strength_error():
    # beats at ticks 0 (strength 3) and 8 (strength 1); the music plays a triad on 0, one note on 8
    beats = [(0, 3), (8, 1)]
    midi = make_midi([(0, 60), (0, 64), (0, 67), (8, 72), (4, 50)])
    assert control.strength_error(midi, beats, n_bars=1) == 0.0
    midi = make_midi([(0, 60), (8, 72)])
    assert control.strength_error(midi, beats, n_bars=1) == pytest.approx(((1 - 3) / 24) ** 2 / 16)
    with pytest.raises(InputError):
        control.strength_error(midi, [(-1, 2)], n_bars=1)


def test_time_error():
    beats = [(0, 2), (8, 2)]  # at 120 BPM a tick is 0.125 s: beats at 0 s and 1 s
    assert control.time_error(make_midi([(0, 60), (8, 60)]), beats, 4.0, 120) == pytest.approx(0.0)
    # no onset on the second beat: its nearest onset is 1 s away -> mean 0.5 s over a 4 s video
    assert control.time_error(make_midi([(0, 60)]), beats, 4.0, 120) == pytest.approx(0.125)
    with pytest.raises(InputError):
        control.time_error(make_midi([(0, 60)]), beats, 0.0, 120)


def test_control_errors_vanish_for_a_real_song_measured_against_itself(shared):
    midi = MidiFile(shared / "pop909" / "001.mid")
    notes = grid.grid_notes(midi)
    densities = grid.bar_densities(notes)
    strengths = grid.tick_strengths(notes)
    beats = [(t, s) for t, s in enumerate(strengths) if s]
    assert control.density_error(midi, densities) == 0.0
    assert control.strength_error(midi, beats, len(densities)) == 0.0
    # against a different song the errors are positive
    other = MidiFile(shared / "pop909" / "002.mid")
    assert control.density_error(other, densities) > 0
    assert control.strength_error(other, beats, len(densities)) > 0


# ---------------------------------------------------------------- rhythm alignment, length


def test_strong_onsets_are_the_top_quantile_ticks():
    # strengths per tick: 0 -> 4 notes, 4, 8, 12 -> 1 note
    midi = make_midi([(0, 48), (0, 52), (0, 55), (4, 60), (8, 60), (12, 60)], drums=[(0, 36)])
    assert control.strong_onset_times(midi).tolist() == [0.0]
    assert np.allclose(control.strong_onset_times(midi, quantile=0), [0, 0.5, 1.0, 1.5])


def test_onset_alignment_known_values():
    video_beats = [(t, 1) for t in (0, 8, 16, 24)]
    on_beats = make_midi([(t, 60) for t in (0, 8, 16, 24)])
    result = control.onset_alignment(on_beats, video_beats, [], 120)
    assert (result["precision"], result["recall"], result["f1"]) == (1.0, 1.0, 1.0)
    assert result["tolerance_s"] == pytest.approx(0.125)
    late_by_one = make_midi([(t + 1, 60) for t in (0, 8, 16, 24)])
    assert control.onset_alignment(late_by_one, video_beats, [], 120)["f1"] == 1.0  # within ±1 tick
    late_by_two = make_midi([(t + 2, 60) for t in (0, 8, 16, 24)])
    assert control.onset_alignment(late_by_two, video_beats, [], 120)["f1"] == 0.0
    # 4 music onsets, 2 on beats; video: 4 beats + a cut at 3.5 s (tick 28) -> P 2/4, R 2/5
    half = make_midi([(t, 60) for t in (0, 4, 8, 12)])
    result = control.onset_alignment(half, video_beats, [3.5], 120)
    assert (result["precision"], result["recall"]) == (0.5, 0.4)
    assert result["f1"] == pytest.approx(2 * 2 / 9)


def test_a_cut_on_a_visual_beat_counts_once():
    times = control.video_event_times([(8, 1)], [1.0, 2.0], 120, merge_s=0.125)
    assert times.tolist() == [1.0, 2.0]


def test_beat_align_score():
    video_beats = [(t, 1) for t in (0, 8, 16)]
    exact = make_midi([(t, 60) for t in (0, 8, 16)])
    assert control.beat_align_score(exact, video_beats, [], 120) == pytest.approx(1.0)
    late = make_midi([(t + 2, 60) for t in (0, 8, 16)])  # 0.25 s late
    expected = math.exp(-(0.25**2) / (2 * 0.1**2))
    assert control.beat_align_score(late, video_beats, [], 120, sigma_s=0.1) == pytest.approx(expected)
    assert math.isnan(control.beat_align_score(exact, [], [], 120))


def test_length_error():
    midi = make_midi([(0, 60), (64, 60)], dur=16 * TICK)  # last note: 8 s .. 10 s at 120 BPM
    assert control.length_error(midi, 8.0) == pytest.approx(2.0)
    assert control.length_error(midi, 12.0) == pytest.approx(-2.0)


def test_evaluate_a_real_song(shared):
    midi = MidiFile(shared / "openmsx" / "coconut_run2.mid")  # 68 s, 4/4, drums
    tempo = midi.tempo_changes[0].tempo
    notes = grid.grid_notes(midi)
    duration = float(notes.end_s.max())
    n_bars = int(notes.tick.max()) // 16 + 1
    video = dict(target_densities=[8] * n_bars, visual_beats=[(t, 4) for t in range(0, 16 * n_bars, 8)],
                 cuts=[10.0, 30.5], duration_s=duration, tempo_bpm=tempo)
    result = control.evaluate(midi, **video)
    assert set(result) == {"pitch_entropy", "groove_similarity", "structureness", "density_error",
                           "strength_error", "time_error", "onset_precision", "onset_recall",
                           "onset_f1", "beat_align", "length_error_s"}
    assert 0 < result["pitch_entropy"] <= math.log2(12)
    for key in ("groove_similarity", "structureness", "density_error", "strength_error",
                "onset_precision", "onset_recall", "onset_f1", "beat_align"):
        assert 0 <= result[key] <= 1, key
    assert result["length_error_s"] == pytest.approx(0.0)
    assert control.evaluate(midi, **video) == result  # deterministic
