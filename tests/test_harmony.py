"""Key finding, chord labels and the harmony plan (music/harmony.py)."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.errors import InputError
from vbgm_core.music.harmony import (
    BASS_REGISTER,
    OUT_OF_KEY,
    HarmonyPlan,
    check_mode,
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
    plan = HarmonyPlan(0, "major", 2, [(0, 0), (16, 4)])  # C, then G in the last bar
    strong, weak = plan.pitch_prior("piano", 0), plan.pitch_prior("piano", 1)
    assert strong[61] == OUT_OF_KEY and np.isfinite(strong).all()   # C# down, not masked
    assert strong[64] > weak[64] > strong[62]                     # E: chord tone, on the beat most
    assert (plan.pitch_prior("drums", 0) == 0).all()
    bass = plan.pitch_prior("bass", 0)
    assert np.argmax(bass) % 12 == 0 and BASS_REGISTER[0] <= np.argmax(bass) <= BASS_REGISTER[1]
    assert bass[84] < bass[36] - 5                                # high bass notes unlikely
    final = plan.pitch_prior("piano", 17)                         # last bar (G here)
    assert final[67] - final[65] > 5


def test_plan_written_into_the_midi():
    plan = HarmonyPlan(2, "minor", 2, [(0, 0), (16, 4)])
    midi = plan.annotate(miditoolkit.MidiFile(ticks_per_beat=480))
    assert midi.key_signature_changes[0].key_name == "Dm"
    assert plan_from_midi(midi) == [(0, "Dm"), (16 * 120, "Am")]
    assert plan.to_dict()["chords"][1] == {"tick": 16, "bar": 1.0, "degree": 4, "name": "Am"}
