"""The controlled sampler: grammar always holds, controls apply, length is exact, seeds repeat.

An untrained model is the hardest case for the masks (its choices are arbitrary), so these
tests use a randomly initialised debug-size CMT.
"""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vbgm_core.errors import Cancelled, InputError
from vbgm_core.model.cmt import CMT
from vbgm_core.model.config import load_config
from vbgm_core.music import sampler as sampler_module
from vbgm_core.music.form import FormPlan
from vbgm_core.music.harmony import SCALES, HarmonyPlan
from vbgm_core.music.instruments import GROUP_ID
from vbgm_core.music.sampler import (
    PASSING_TICKS,
    PITCH_RANGE,
    ControlledSampler,
    Sampling,
    Targets,
)
from vbgm_core.music.tokenizer import (
    BAR,
    EOS,
    NOTE,
    CPTokenizer,
    bar_densities,
    onset_strengths,
    tokens_errors,
)
from vbgm_core.options import ScoreOptions

MIN_DENSITY = ScoreOptions().min_density   # the users' default floor


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg, _ = load_config("debug")
    return CMT(dataclasses.replace(cfg, n_genres=2)).eval()


targets_strategy = st.integers(1, 3).flatmap(lambda n: st.builds(
    Targets, st.just(n), st.lists(st.integers(0, 16), min_size=n, max_size=n),
    st.dictionaries(st.integers(0, 16 * n - 1), st.integers(1, 24), max_size=6)))


@settings(max_examples=10, deadline=None)
@given(targets=targets_strategy, control=st.sampled_from([0.0, 0.5, 1.0]),
       instruments=st.sampled_from([["drums"], ["bass"], ["piano", "strings"],
                                    ["drums", "piano", "guitar", "bass", "strings"]]),
       seed=st.integers(0, 99), repetition=st.sampled_from([0.0, 1.0]))
def test_every_generation_is_valid_and_exactly_long(model, targets, control, instruments, seed,
                                                     repetition):
    tokens = ControlledSampler(model, 1, instruments, control, seed, min_density=MIN_DENSITY,
                               repetition=repetition).generate(targets)
    assert tokens_errors(tokens) == []
    assert (tokens[:, 0] == BAR).sum() == targets.n_bars and tokens[-1, 0] == EOS
    notes = tokens[tokens[:, 0] == NOTE]
    allowed = {GROUP_ID[i] for i in instruments}
    assert set(notes[:, 4].tolist()) <= allowed
    for g in allowed:
        pitches = notes[notes[:, 4] == g, 5] - 1
        lo, hi = PITCH_RANGE[[k for k, v in GROUP_ID.items() if v == g][0]]
        assert ((pitches >= lo) & (pitches <= hi)).all()
    if control == 1.0:  # every density and visual beat imposed (density grows to fit beats)
        want = {t: s for t, s in targets.beats.items()}
        got = {int(t): int(s) for t, s in onset_strengths(tokens)}
        assert all(got.get(t) == s for t, s in want.items())
        per_bar = [sum(1 for t in want if t // 16 == b) for b in range(targets.n_bars)]
        assert bar_densities(tokens).tolist() == [max(d, k, MIN_DENSITY) for d, k in
                                                  zip(targets.densities, per_bar)]
    CPTokenizer().decode(tokens)


def test_seeds_repeat_and_differ(model):
    targets = Targets(3, [4, 8, 12], {0: 3, 20: 5})
    runs = [ControlledSampler(model, 0, ["piano", "bass"], 0.7, s).generate(targets)
            for s in (1, 1, 2)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_free_music_ignores_targets(model):
    targets = Targets(4, [16, 16, 16, 16], {})
    tokens = ControlledSampler(model, 0, ["piano"], 0.0, 3).generate(targets)
    assert bar_densities(tokens).tolist() != [16, 16, 16, 16]


def test_contract_and_cancel(model):
    # Users' values are checked in ScoreOptions (tests/test_options.py); the sampler asserts.
    for bad in (dict(control=1.2), dict(instruments=["kazoo"]), dict(min_density=17),
                dict(harmony="C major")):
        args = {"instruments": ["piano"], "control": 0.5, "seed": 0, **bad}
        with pytest.raises(AssertionError):
            ControlledSampler(model, 0, args.pop("instruments"), **args)
    with pytest.raises(Cancelled):
        ControlledSampler(model, 0, ["piano"], 0.5, 0).generate(Targets(2), cancel=lambda: True)


def test_sampling_settings_parse_and_refuse():
    s = Sampling.parse(["pitch.temperature=0.8", "beat.top_p=0.95"])
    assert s.temperature["pitch"] == 0.8 and s.top_p["beat"] == 0.95
    assert s.temperature["beat"] == 1.2  # untouched defaults stay
    assert Sampling.parse(["genre.guidance=1.5"]).genre_guidance == 1.5
    for bad in (["kazoo.top_p=0.5"], ["pitch.top_p=1.5"], ["pitch.temperature=x"], ["pitch=1"],
                ["genre.guidance=-1"], ["genre.guidance=x"], ["genre.temperature=1"]):
        with pytest.raises(InputError, match="sampling setting"):
            Sampling.parse(bad)


def test_genre_guidance_steers_and_stays_valid(model):
    targets = Targets(2, [8, 8], {0: 2})

    def run(*settings):
        return ControlledSampler(model, 1, ["drums", "piano"], 0.5, 4,
                                 Sampling.parse(list(settings))).generate(targets)
    plain = run("genre.guidance=0")                           # 0 = off: the unguided path
    guided = run("genre.guidance=3")
    assert tokens_errors(guided) == [] and (guided[:, 0] == BAR).sum() == 2
    assert not np.array_equal(guided, plain) and np.array_equal(run("genre.guidance=3"), guided)
    assert np.array_equal(run(), run(f"genre.guidance={Sampling().genre_guidance}"))
    assert Sampling().genre_guidance > 0   # on by default (docs/GENRE.md)


def test_guidance_moves_the_plausible_choices_and_keeps_the_tail():
    """Guidance amplifies the genre's difference from the others among the choices the genre
    finds plausible; the unlikely tail keeps its own logits (cutting it narrowed the harmony),
    and what is not allowed stays out."""
    from vbgm_core.music.sampler import PLAUSIBLE, guided

    genre = np.log(np.array([0.5, 0.3, 0.5 * PLAUSIBLE / 2, 0.01, 0.19]))
    others = np.log(np.array([[0.3, 0.5, 0.01, 0.01, 0.18], [0.3, 0.5, 0.03, 0.01, 0.16]]))
    allowed = np.array([True, True, True, True, False])
    z = guided(np.vstack([genre, others]), allowed, 2.0)
    mean = others.mean(0)
    assert np.allclose(z[:2], genre[:2] + 2.0 * (genre[:2] - mean[:2]))   # plausible: moved
    assert np.allclose(z[2:], genre[2:])                # the tail (and the disallowed) as they were
    assert z[0] - z[1] > genre[0] - genre[1]            # the genre's preference, amplified
    assert np.array_equal(guided(np.vstack([genre, others]), allowed, 0.0), genre)


def test_lower_temperature_narrows_the_choices(model):
    """Temperature alone (top-p 1) changes the notes: a sampler that ignored it would give the
    same notes at every temperature. (That a colder sampler spreads less is measured on the
    trained model: tests/test_options.py.)"""
    targets = Targets(2, [8, 8], {})

    def pitches(temperature):
        sampling = Sampling.parse([f"pitch.temperature={temperature}", "pitch.top_p=1"])
        tokens = ControlledSampler(model, 0, ["piano"], 1.0, 0, sampling,
                                   harmony=None).generate(targets)
        return tokens[tokens[:, 0] == NOTE, 5].tolist()
    assert pitches(0.001) != pitches(5.0)


def _out_of_key(tokens, plan):
    """Share of the pitched note time outside the plan's key (as metrics.quality measures)."""
    notes = tokens[(tokens[:, 0] == NOTE) & (tokens[:, 4] != GROUP_ID["drums"])]
    scale = {(plan.tonic + pc) % 12 for pc in SCALES[plan.mode]}
    outside = np.array([(p - 1) % 12 not in scale for p in notes[:, 5]])
    return notes[outside, 6].sum() / notes[:, 6].sum()


def test_harmony_prior_keeps_to_the_key_without_a_mask(model):
    # an untrained model spreads pitches evenly: the prior alone pulls them into the key
    targets = Targets(4, [12] * 4, {})
    plan = HarmonyPlan.choose("pop", 4, seed=0, key="D", mode="minor")
    free = ControlledSampler(model, 0, ["piano", "strings"], 1.0, 0, harmony=None).generate(targets)
    ruled = ControlledSampler(model, 0, ["piano", "strings"], 1.0, 0, harmony=plan)
    tokens = ruled.generate(targets)
    assert ruled.plan is plan and tokens_errors(tokens) == []
    free_share = _out_of_key(free, plan)
    assert free_share > 0.3  # 5 of 12 pitch classes are outside
    # down-weighted, not forbidden (the rising-pitch order of a chord's notes, which this
    # random model fills with many notes, still forces some out-of-key ones)
    assert 0 < _out_of_key(tokens, plan) < 0.6 * free_share


def test_auto_plan_and_density_floor(model):
    targets = Targets(3, [0, 0, 1], {})
    sampler = ControlledSampler(model, 0, ["piano"], 1.0, 5, min_density=MIN_DENSITY)
    tokens = sampler.generate(targets)
    assert isinstance(sampler.plan, HarmonyPlan) and sampler.plan.n_bars == 3
    assert bar_densities(tokens).tolist() == [MIN_DENSITY] * 3  # calm is not silence
    sparse = ControlledSampler(model, 0, ["piano"], 1.0, 5, harmony=None, min_density=0)
    assert bar_densities(sparse.generate(targets)).tolist() == [0, 0, 1]  # asked for sparseness
    assert sparse.plan is None


def test_calm_bars_hold_their_notes(model):
    # density 3 (calm) vs 16 (busy), same seed: held durations are favoured in the calm bars
    def mean_duration(density):
        tokens = ControlledSampler(model, 0, ["piano"], 1.0, 2, harmony=None).generate(
            Targets(4, [density] * 4, {}))
        return tokens[tokens[:, 0] == NOTE, 6].mean()
    assert mean_duration(3) > mean_duration(16) + 2


# ---------------------------------------------------------------- re-use (issue 23)

def _bars(tokens, drums):
    """Per bar, the set of (16th in bar, instrument, pitch) of the drums or the pitched notes."""
    bars, tick = [], 0
    for row in tokens.tolist():
        if row[0] == BAR:
            bars.append(set())
        elif row[0] == 2:
            tick = row[1] - 1
        elif row[0] == NOTE and (row[4] == GROUP_ID["drums"]) == drums:
            bars[-1].add((tick, row[4], row[5]))
    return bars


def _jaccard(a, b):
    return len(a & b) / len(a | b) if a | b else 0.0


STEADY = Targets(6, [4] * 6, {})     # a steady picture: phrases of 4 + 2 bars, the 2 return


def test_repeated_bars_reuse_their_source(model):
    """Drums: bars 2 and 4 lean on bar 0, bar 5 on bar 1 (the groove); pitched: bars 4-5 replay
    bars 0-1 (a returning phrase). With repetition 1 they match their sources far more than the
    free sampler's."""
    form = FormPlan.choose(6, STEADY.densities, seed=0)
    assert form.pitched_source[4:] == [0, 1] and form.pitched_source[2] == 0

    def matches(repetition):
        drums, pitched = [], []
        for seed in range(2):
            tokens = ControlledSampler(model, 0, ["drums", "piano"], 1.0, seed,
                                       harmony=None, repetition=repetition,
                                       form=form).generate(STEADY)
            d, p = _bars(tokens, True), _bars(tokens, False)
            # (bar 3 fills before the return: its drums are free)
            drums += [_jaccard(d[2], d[0]), _jaccard(d[4], d[0]), _jaccard(d[5], d[1])]
            pitched += [_jaccard(p[4], p[0]), _jaccard(p[5], p[1])]
        return np.mean(drums), np.mean(pitched)
    free_drums, free_pitched = matches(0.0)
    drums, pitched = matches(1.0)
    assert drums > 0.7 and drums > free_drums + 0.5, (drums, free_drums)
    assert pitched > 0.7 and pitched > free_pitched + 0.5, (pitched, free_pitched)


def test_reuse_is_seeded_and_keeps_the_controls(model):
    targets = Targets(5, [6, 9, 12, 9, 4], {3: 5, 20: 2, 37: 7, 70: 3})
    runs = [ControlledSampler(model, 0, ["drums", "piano", "bass"], 1.0, s, repetition=1.0,
                              min_density=MIN_DENSITY).generate(targets) for s in (1, 1, 2)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    for tokens in runs:        # at C = 1 every density and visual beat is the video's
        assert tokens_errors(tokens) == []
        assert bar_densities(tokens).tolist() == targets.densities
        got = {int(t): int(s) for t, s in onset_strengths(tokens)}
        assert all(got[t] == s for t, s in targets.beats.items())


def test_repetition_zero_is_the_free_sampler(model):
    """r = 0 takes no form and adds nothing: the tokens are those of a sampler without a form."""
    targets = Targets(3, [6] * 3, {5: 3})
    free = ControlledSampler(model, 0, ["drums", "piano"], 0.7, 3, form=None).generate(targets)
    zero = ControlledSampler(model, 0, ["drums", "piano"], 0.7, 3, repetition=0.0,
                             form=FormPlan.choose(3, [6] * 3))
    assert np.array_equal(zero.generate(targets), free) and zero.form_plan is None
    auto = ControlledSampler(model, 0, ["drums", "piano"], 0.7, 3, repetition=0.5)
    auto.generate(targets)
    assert auto.form_plan == FormPlan.for_targets(targets, 3)


def test_a_reroll_reuses_the_kept_bars(model):
    """The kept bars of a re-roll are re-used like generated ones: the groove carries on."""
    form = FormPlan.choose(6, STEADY.densities, seed=0)
    take = ControlledSampler(model, 0, ["drums", "piano"], 1.0, 5, harmony=None,
                             repetition=1.0, form=form).generate(STEADY)
    prefix = take[:int(np.flatnonzero(take[:, 0] == BAR)[2])]        # its first two bars
    scores = []
    for seed in range(2):
        tokens = ControlledSampler(model, 0, ["drums", "piano"], 1.0, 10 + seed, harmony=None,
                                   repetition=1.0, form=form).generate(STEADY, prefix=prefix)
        assert np.array_equal(tokens[:len(prefix)], prefix)
        d = _bars(tokens, True)
        scores.append(_jaccard(d[2], d[0]))
    assert np.mean(scores) > 0.7


def test_sparse_bars_sound_chords(model, monkeypatch):
    """In sparse bars the onsets without a visual beat lean towards >= 3 notes (calm is held
    chords, not lone notes); a visual beat's strength is left to the video."""
    targets = Targets(4, [3] * 4, {})

    def notes_per_onset():   # unguided: the random test model's genres differ wildly
        tokens = ControlledSampler(model, 0, ["piano", "strings"], 1.0, 1,
                                   Sampling(genre_guidance=0.0), harmony=None).generate(targets)
        return (tokens[:, 0] == NOTE).sum() / (tokens[:, 0] == 2).sum()
    full = notes_per_onset()
    monkeypatch.setattr(sampler_module, "CALM_CHORD", 0.0)
    assert full > notes_per_onset() + 1 and full >= 3


def test_notes_outside_the_key_are_short(model):
    """A note outside the plan's key is a passing tone: short, whatever the model wanted."""
    plan = HarmonyPlan(0, "major", 4, [(0, 0)])
    tokens = ControlledSampler(model, 0, ["piano"], 1.0, 0, harmony=plan).generate(
        Targets(4, [12] * 4, {}))
    notes = tokens[tokens[:, 0] == NOTE]
    short = notes[:, 6] <= PASSING_TICKS
    outside = np.array([not plan.in_key(p - 1) for p in notes[:, 5]])
    assert outside.sum() >= 5 and (~outside).sum() >= 5
    assert short[outside].mean() > short[~outside].mean() + 0.3


def test_the_scorer_passes_repetition_and_ends_on_the_tonic(model):
    """Scorer.generate hands ``repetition`` and the rhythm's form to the sampler, the harmony
    plan it reports follows the same form, and the finished MIDI ends on the tonic triad."""
    from vbgm_core.metrics.quality import final_chord, is_tonic_chord
    from vbgm_core.music.harmony import plan_from_midi
    from vbgm_core.scorer import Scorer
    from vbgm_core.video.rhythm import Bar, VideoRhythm

    scorer = Scorer(model, {"genres": ["pop", "rock"]}, "random.safetensors")
    rhythm = VideoRhythm(12.0, 25.0, 120.0, 6, [Bar(2.0 * i, 0.1, 6) for i in range(6)], [], [])
    runs = {}
    for repetition in (0.0, 1.0):
        options = ScoreOptions(genre="pop", seed=4, control=1.0, instruments="drums,piano",
                               repetition=repetition)
        tokens, midi = scorer.generate(rhythm, options)
        plan = scorer.harmony_plan(rhythm, options)
        form = FormPlan.for_rhythm(rhythm, 4) if repetition else None
        assert plan == HarmonyPlan.for_rhythm(rhythm, "pop", 4, form=form)
        per_tick = midi.ticks_per_beat // 4
        assert [(t // per_tick, name) for t, name in plan_from_midi(midi)] == \
            [(t, plan.chord_name(d)) for t, d in plan.changes]
        assert is_tonic_chord(final_chord(midi), plan.tonic, plan.mode)
        runs[repetition] = _bars(tokens, True)
    groove = [np.mean([_jaccard(d[b], d[b - 2]) for b in (2, 4)]) for d in runs.values()]
    assert groove[1] > groove[0] + 0.4, groove
