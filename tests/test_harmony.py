"""Key finding, chord labels and the harmony plan (music/harmony.py)."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.errors import InputError
from vbgm_core.metrics.quality import final_chord, is_tonic_chord
from vbgm_core.music import harmony
from vbgm_core.music.articulation import close_on_tonic
from vbgm_core.music.form import FormPlan
from vbgm_core.music.harmony import (
    BASS_REGISTER,
    FINAL_FROM,
    KEY_OFF,
    KEY_ON,
    SCALES,
    HarmonyPlan,
    check_mode,
    colour_categories,
    colour_logits,
    estimate_key,
    label_chord,
    parse_key,
    plan_from_midi,
)


def _hist(pcs):
    return np.bincount(pcs, minlength=12).astype(float)


def test_key_of_a_scale_and_of_its_relative_minor():
    # C major scale with the tonic triad stressed; then A minor stressed the same way
    assert estimate_key(_hist([0, 2, 4, 5, 7, 9, 11, 0, 0, 4, 7])) == (0, "major")
    assert estimate_key(_hist([9, 11, 0, 2, 4, 5, 7, 9, 9, 0, 4])) == (9, "minor")


def test_chord_labels():
    assert label_chord(_hist([7, 11, 2, 7]), 0, "major") == 4   # G major in C: V
    assert label_chord(_hist([9, 0, 4]), 0, "major") == 5       # A minor in C: vi
    assert label_chord(np.zeros(12), 0, "major") == -1


def test_key_names():
    assert [parse_key(k) for k in ("C", "F#", "Bb", "eb", "auto", None)] == [0, 6, 10, 3, None, None]
    assert check_mode("Minor") == "minor" and check_mode("auto") is None
    with pytest.raises(InputError, match="key"):
        parse_key("H")
    with pytest.raises(InputError, match="mode"):
        check_mode("dorian")


def test_plan_is_seeded_ends_on_the_tonic_and_follows_cuts():
    plan = HarmonyPlan.choose("rock", 9, cut_ticks=[16 * 4 + 6], seed=3, key="A", mode="minor")
    assert (plan.tonic, plan.mode, plan.key_name) == (9, "minor", "A minor")
    assert plan == HarmonyPlan.choose("rock", 9, [16 * 4 + 6], 3, "A", "minor")
    assert plan.degree_at(8 * 16) == 0 and plan.degree_at(8 * 16 - 1) != 0  # a cadence to I
    # the cut inside bar 4 brings bar 5's chord in early
    assert plan.degree_at(16 * 4 + 6) == plan.degree_at(16 * 5)
    seeds = {HarmonyPlan.choose("pop", 8, seed=s).key_name for s in range(12)}
    assert len(seeds) > 3  # auto keys vary with the seed


def test_prior_is_soft_and_shaped():
    plan = HarmonyPlan(0, "major", 2, [(0, 0), (16, 4)], "pop")  # C, then G in the last bar
    strong, weak = plan.pitch_prior("piano", 0), plan.pitch_prior("piano", 1)
    assert strong[61] == KEY_ON and weak[61] == KEY_OFF and np.isfinite(strong).all()
    assert KEY_ON < KEY_OFF < 0          # out of key: down, least between beats (passing tones)
    assert strong[64] > weak[64] and strong[64] > strong[62] > strong[61]   # E: a chord tone
    assert strong[60] > strong[64] > 0   # the data's order: the root before the third
    # between beats the scale is flat (passing and neighbour tones as likely as chord tones),
    # but for the seventh
    assert weak[60] == weak[62] == weak[64] == weak[65] == weak[67] == weak[69] == 0
    assert (plan.pitch_prior("drums", 0) == 0).all()
    bass = plan.pitch_prior("bass", 1)
    assert np.argmax(bass) % 12 == 0 and BASS_REGISTER[0] <= np.argmax(bass) <= BASS_REGISTER[1]
    assert bass[36] > bass[40] > bass[38]                          # the bass names the chord
    assert bass[84] < bass[36] - 5                                # high bass notes unlikely
    final = plan.pitch_prior("piano", 16 + FINAL_FROM + 1)       # last half bar: ends on I
    assert final[64] - final[65] > 5 and final[67] - final[71] > 5
    assert np.array_equal(plan.pitch_prior("piano", 17), HarmonyPlan(
        0, "major", 3, plan.changes, "pop").pitch_prior("piano", 17))   # before it: as usual


def test_sevenths_where_the_genre_plays_them():
    # the seventh of C (B) above the other scale tones in genres whose songs use it, by the
    # data (harmony_stats.json "colour"): R&B leans on sevenths, country hardly
    rnb = HarmonyPlan(0, "major", 4, [(0, 0)], "rnb_soul").pitch_prior("piano", 1)
    country = HarmonyPlan(0, "major", 4, [(0, 0)], "country").pitch_prior("piano", 1)
    assert rnb[71] > rnb[69] == 0 and rnb[71] > country[71] + 0.1
    assert colour_logits("rnb_soul", "other", False)[3] > 0.2 > \
        colour_logits("country", "other", False)[3]


def test_the_colour_asset_holds_every_genre_and_category():
    """The chord colour the prior reads: the categories in harmony.py's order, every genre of
    the progressions, shares that sum to one."""
    colour = harmony.harmony_stats()["colour"]
    assert colour["categories"] == list(harmony.COLOUR_CATEGORIES)
    assert set(colour["genres"]) == set(harmony.harmony_stats()["genres"])
    for table in [colour["all"], *colour["genres"].values()]:
        for role in ("bass", "other"):
            for beat in ("on", "off"):
                assert sum(table[role][beat]) == pytest.approx(1, abs=1e-3)


def test_colour_categories_of_a_chord():
    # G (V) in C major: G root, B third, D fifth, F seventh, A C E the other scale tones
    cats = colour_categories(0, "major", 4)
    names = {pc: harmony.COLOUR_CATEGORIES[c] for pc, c in cats.items()}
    assert [names[pc] for pc in (7, 11, 2, 5, 9, 0, 4)] == \
        ["root", "third", "fifth", "seventh", "other", "other", "other"]
    assert {pc for pc, n in names.items() if n == "out"} == {1, 3, 6, 8, 10}
    # A minor's ii chord (B dim): B D F, seventh A
    cats = colour_categories(9, "minor", 1)
    assert [cats[pc] for pc in (11, 2, 5, 9)] == [0, 1, 2, 3]


def test_colour_logits_are_the_datas_log_ratios(monkeypatch):
    shares = [0.4, 0.2, 0.2, 0.05, 0.09, 0.05]   # per category; "other" has 3 tones, "out" 5
    table = {"bass": {"on": shares, "off": shares}, "other": {"on": shares, "off": shares}}
    monkeypatch.setattr(harmony, "harmony_stats",
                        lambda: {"colour": {"all": table, "genres": {}}})
    colour_logits.cache_clear()
    try:
        got = colour_logits("pop", "other", True)
    finally:
        colour_logits.cache_clear()
    per_tone = np.array(shares) / [1, 1, 1, 1, 3, 5]
    assert got == pytest.approx(np.log(per_tone / 0.03))
    assert got[4] == 0 and got[0] == pytest.approx(np.log(0.4 / 0.03))


def test_transpose_moves_by_the_chord_change_and_keeps_to_the_key():
    plan = HarmonyPlan(0, "major", 3, [(0, 0), (16, 4), (32, 1)])   # C, G, Dm
    assert [plan.transpose(p, 0, 16) for p in (60, 64, 67)] == [55, 59, 62]   # I -> V: 3 down
    assert [plan.transpose(p, 0, 32) for p in (60, 64, 67)] == [62, 65, 69]   # I -> ii: 1 up
    assert plan.transpose(71, 0, 3) == 71                         # same chord: unchanged
    assert plan.transpose(61, 0, 0) == 60                         # C#: onto the scale (lower)
    for tonic in range(12):
        for mode in SCALES:
            p = HarmonyPlan(tonic, mode, 2, [(0, 0), (16, 5)])
            moved = [p.transpose(q, 0, 16) for q in range(36, 90)]
            assert all(p.in_key(q) for q in moved)
            assert all(abs(q - r) <= 7 for q, r in zip(range(36, 90), moved))


def test_a_returning_phrase_replays_its_chords():
    form = FormPlan.choose(12, [4] * 4 + [14] * 4 + [4] * 4, [4 * 16, 8 * 16])
    assert form.labels == "ABA"
    for seed in range(6):
        plan = HarmonyPlan.choose("pop", 12, [4 * 16, 8 * 16], seed, form=form)
        degrees = [plan.degree_at(16 * b) for b in range(12)]
        assert degrees[8:10] == degrees[0:2]       # the last two bars close the piece (V, I)
        assert degrees[-1] == 0
        assert plan == HarmonyPlan.choose("pop", 12, [4 * 16, 8 * 16], seed, form=form)


def _ending(notes, tpb=480):
    """A piano track and a drum track; ``notes`` are (pitch, start, end) in 16ths."""
    midi = miditoolkit.MidiFile(ticks_per_beat=tpb)
    k = tpb // 4
    midi.instruments = [
        miditoolkit.Instrument(0, name="piano", notes=[
            miditoolkit.Note(80, p, s * k, e * k) for p, s, e in notes]),
        miditoolkit.Instrument(0, is_drum=True, name="drums", notes=[
            miditoolkit.Note(90, 37, 60 * k, 61 * k)])]
    return midi


def test_close_on_tonic():
    c_major = (0, "major")
    # E and G ring: the lowest becomes the root
    midi = close_on_tonic(_ending([(60, 0, 16), (64, 48, 64), (67, 48, 64)]), *c_major)
    assert final_chord(midi) == {0, 7} and is_tonic_chord(final_chord(midi), *c_major)
    assert [n.start for n in midi.instruments[0].notes] == [0, 48 * 120, 48 * 120]
    # D and F: out of the triad, moved to the nearest triad pitch (C below D on the tie)
    midi = close_on_tonic(_ending([(62, 48, 64), (65, 48, 64)]), *c_major)
    assert sorted(n.pitch for n in midi.instruments[0].notes) == [60, 64]
    # the nearest pitch is taken by a note sounding with it: the next nearest
    midi = close_on_tonic(_ending([(60, 40, 64), (62, 48, 64)]), *c_major)
    assert sorted(n.pitch for n in midi.instruments[0].notes) == [60, 64]
    # a tonic ending stays as it is; drums are never touched
    midi = close_on_tonic(_ending([(57, 48, 64), (60, 48, 64), (64, 48, 64)]), 9, "minor")
    assert sorted(n.pitch for n in midi.instruments[0].notes) == [57, 60, 64]
    assert midi.instruments[1].notes[0].pitch == 37
    assert close_on_tonic(miditoolkit.MidiFile(), 0).instruments == []


def test_finished_pieces_end_on_the_tonic():
    """finish(): a last bar that plays D and F over C major still ends on the tonic triad."""
    from vbgm_core.music.finish import finish
    from vbgm_core.video.rhythm import Bar, VideoRhythm

    rhythm = VideoRhythm(4.0, 25.0, 120.0, 2, [Bar(0.0, 0.1, 4), Bar(2.0, 0.1, 4)], [], [])
    plan = HarmonyPlan(0, "major", 2, [(0, 4), (16, 0)])
    midi = _ending([(55, 0, 8), (59, 0, 8), (62, 16, 32), (65, 16, 32)])
    midi.tempo_changes = [miditoolkit.TempoChange(120.0, 0)]
    onsets = sorted(n.start for n in midi.instruments[0].notes)
    finish(midi, rhythm, plan, seed=0)
    assert is_tonic_chord(final_chord(midi), 0, "major")
    assert sorted(n.start for n in midi.instruments[0].notes) == onsets


def test_plan_written_into_the_midi():
    plan = HarmonyPlan(2, "minor", 2, [(0, 0), (16, 4)])
    midi = plan.annotate(miditoolkit.MidiFile(ticks_per_beat=480))
    assert midi.key_signature_changes[0].key_name == "Dm"
    assert plan_from_midi(midi) == [(0, "Dm"), (16 * 120, "Am")]
    assert plan.to_dict()["chords"][1] == {"tick": 16, "bar": 1.0, "degree": 4, "name": "Am"}
