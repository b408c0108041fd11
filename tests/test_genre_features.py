"""Genre features on hand-built tokens with known answers, and the classifier of
scripts/genre_classifier.py on two synthetic, clearly different "genres"."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vbgm_core.metrics.genre_features import (
    FEATURE_NAMES,
    bar_window,
    excerpt_features,
    window_starts,
)
from vbgm_core.music.instruments import GROUP_ID
from vbgm_core.music.tokenizer import BAR, BEAT_T, EOS, NOTE, tokens_errors

ROOT = Path(__file__).resolve().parents[1]
KICK, SNARE, HIHAT = 36, 38, 42


def load_script():
    spec = importlib.util.spec_from_file_location("genre_classifier",
                                                  ROOT / "scripts" / "genre_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def song(bars):
    """Tokens of bars given as {tick: [(instrument name, pitch, duration), ...]} dicts."""
    rows = []
    for bar in bars:
        ticks = sorted(bar)
        rows.append([BAR, 0, len(ticks) + 1, 0, 0, 0, 0])
        for left, tick in zip(range(len(ticks), 0, -1), ticks):
            notes = sorted((GROUP_ID[i], p, d) for i, p, d in bar[tick])
            rows.append([BEAT_T, tick + 1, left + 1, len(notes), 0, 0, 0])
            rows += [[NOTE, 0, 0, 0, g, p + 1, d] for g, p, d in notes]
    rows.append([EOS, 0, 0, 0, 0, 0, 0])
    tokens = np.array(rows, dtype=np.int64)
    assert not tokens_errors(tokens)
    return tokens


def features(tokens):
    return dict(zip(FEATURE_NAMES, excerpt_features(tokens)))


def four_on_the_floor():
    return {t: [("drums", KICK, 1)] for t in (0, 4, 8, 12)}


def test_four_on_the_floor_hits_every_beat_and_nothing_else():
    f = features(song([four_on_the_floor()] * 2))
    for p in range(16):
        expected = 1.0 if p % 4 == 0 else 0.0
        assert f[f"drum_onset_{p}"] == expected and f[f"kick_onset_{p}"] == expected
        assert f[f"snare_onset_{p}"] == 0.0
    assert f["drum_share_kick"] == 1.0 and f["drum_share_other"] == 0.0
    assert f["offbeat_share_drums"] == 0.0
    assert f["present_drums"] == 1.0 and f["present_piano"] == 0.0
    assert np.isclose(f["onsets_per_bar_drums"], np.log1p(4))


def test_drum_pattern_counts_the_share_of_bars():
    backbeat = {4: [("drums", SNARE, 1)], 12: [("drums", SNARE, 1)]}
    f = features(song([four_on_the_floor(), backbeat]))
    assert f["kick_onset_0"] == 0.5 and f["snare_onset_4"] == 0.5 and f["drum_onset_4"] == 1.0
    assert f["drum_share_kick"] == pytest.approx(4 / 6)


def test_a_held_major_triad_is_a_major_chord_on_every_beat():
    f = features(song([{0: [("piano", 60, 16), ("piano", 64, 16), ("piano", 67, 16)]}]))
    assert f["chord_major"] == 1.0 and f["chord_minor"] == 0.0 and f["chord_seventh"] == 0.0
    assert f["chord_single"] == 0.0 and f["chord_power"] == 0.0
    assert f["pcs_per_beat"] == 3.0 and f["chord_change"] == 0.0 and f["out_of_scale"] == 0.0
    assert f["pitch_mean_piano"] == pytest.approx(191 / 3)


def test_minor_seventh_power_and_single_notes():
    a_minor7 = song([{0: [("guitar", 57, 16), ("guitar", 60, 16), ("guitar", 64, 16),
                          ("guitar", 67, 16)]}])
    f = features(a_minor7)
    assert f["chord_minor"] == 1.0 and f["chord_seventh"] == 1.0
    assert f["chord_major"] == 1.0    # C-E-G inside Am7: the shape is there at root C
    power = features(song([{0: [("guitar", 40, 4), ("guitar", 47, 4)],
                            8: [("bass", 40, 4)]}]))
    # Beats 0 and 2 sound, beats 1 and 3 are silent and do not count.
    assert power["chord_power"] == 0.5 and power["chord_single"] == 0.5


def test_a_note_counts_on_every_beat_it_sounds_but_not_past_the_excerpt():
    f = features(song([{14: [("strings", 60, 32)]}]))   # one bar: cut at tick 16
    assert f["pcs_per_bar"] == 1.0 and f["chord_single"] == 1.0
    assert f["log2_duration_strings"] == 5.0


def test_syncopation_counts_offbeat_and_odd_sixteenth_onsets():
    bar = {1: [("bass", 40, 1)], 2: [("bass", 40, 1)], 4: [("bass", 40, 1)],
           6: [("bass", 40, 1)]}
    f = features(song([bar]))
    assert f["offbeat_share_pitched"] == 0.75 and f["odd16th_share_pitched"] == 0.25
    assert np.isnan(f["offbeat_share_drums"])


def test_an_absent_instrument_has_no_register():
    f = features(song([four_on_the_floor()]))
    assert np.isnan(f["pitch_mean_bass"]) and np.isnan(f["pitch_range_bass"])
    assert f["onsets_per_bar_bass"] == 0.0 and f["present_bass"] == 0.0


def test_windows_are_spread_over_the_song_and_keep_their_bars():
    assert window_starts(100, 16, 4) == [0, 28, 56, 84]
    assert window_starts(40, 16, 4) == [0, 24]
    assert window_starts(15, 16, 4) == []
    bars = [{0: [("bass", 30 + b, 1)]} for b in range(5)]
    window = bar_window(song(bars), 2, 2)
    assert not tokens_errors(window)
    assert list(window[window[:, 0] == NOTE, 5] - 1) == [32, 33]


def synthetic_genre(kind, rng):
    """Four bars of "disco" (kick on every beat, held major triads) or "trap" (snare backbeat,
    hi-hats on odd 16ths, short minor triads off the beat), transposed at random."""
    root = int(rng.integers(48, 60))
    bars = []
    for _ in range(4):
        bar = {}
        if kind == 0:
            for t in (0, 4, 8, 12):
                bar[t] = [("drums", KICK, 1)]
            bar[0] += [("piano", root + i, 16) for i in (0, 4, 7)]
        else:
            for t in (4, 12):
                bar[t] = [("drums", SNARE, 1)]
            for t in (1, 7, 11, 15):
                bar.setdefault(t, []).append(("drums", HIHAT, 1))
            for t in (2, 10):
                bar[t] = bar.get(t, []) + [("piano", root + i, 2) for i in (0, 3, 7)]
        if rng.random() < 0.5:       # noise both genres share: a bass note now and then
            bar.setdefault(0, []).append(("bass", root - 12, 4))
        bars.append(bar)
    return song(bars)


def test_the_classifier_separates_two_clearly_different_genres_deterministically():
    gc = load_script()
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = np.array([excerpt_features(synthetic_genre(k, rng)) for k in y])
    fitted = gc.GenreClassifier.fit(x, y, ["disco", "trap"])
    again = gc.GenreClassifier.fit(x, y, ["disco", "trap"])
    assert np.array_equal(fitted.weights, again.weights) and np.array_equal(fitted.bias, again.bias)
    test_y = np.arange(20) % 2
    test_x = np.array([excerpt_features(synthetic_genre(k, rng)) for k in test_y])
    result = gc.scores(test_y, fitted.predict(test_x), ["disco", "trap"], test_chance=True)
    assert result["balanced_accuracy"] == 1.0
    assert result["p_value_vs_chance"] == pytest.approx(0.5 ** 20)


def test_a_saved_classifier_predicts_the_same(tmp_path):
    gc = load_script()
    rng = np.random.default_rng(1)
    y = np.arange(10) % 2
    x = np.array([excerpt_features(synthetic_genre(k, rng)) for k in y])
    fitted = gc.GenreClassifier.fit(x, y, ["disco", "trap"])
    fitted.to_json(tmp_path / "clf.json")
    loaded = gc.GenreClassifier.from_json(tmp_path / "clf.json")
    assert np.allclose(loaded.probabilities(x), fitted.probabilities(x))


def test_the_binomial_tail_against_chance():
    gc = load_script()
    assert gc.binomial_tail(0, 10, 0.2) == pytest.approx(1.0)
    assert gc.binomial_tail(10, 10, 0.2) == pytest.approx(0.2 ** 10)
    assert gc.binomial_tail(2, 3, 0.5) == pytest.approx(0.5)


def test_excerpts_of_mostly_silent_bars_are_left_out():
    gc = load_script()
    played = {0: [("bass", 40, 4)]}
    assert len(gc.song_excerpts(song([played] * 32), 4)) == 2
    intro = song([{}] * 8 + [played] * 24)          # the first window is half silence
    assert [len(w) for w in gc.song_excerpts(intro, 4)] == [16 * 3 + 1]
