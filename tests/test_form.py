"""The form plan (music/form.py) on hand-built rhythms with known answers: phrases, cuts,
sections that come back, which bar re-uses which, fills."""

import pytest

from vbgm_core.music.form import (
    FILL_TICKS,
    MIN_PHRASE,
    SECTION_FILL_TICKS,
    STRONG_BEAT,
    FormPlan,
    _split,
)
from vbgm_core.music.sampler import Targets
from vbgm_core.video.rhythm import Bar, VideoRhythm, VisualBeat

BAR = 16


def spans(plan):
    return [(p.start, p.length) for p in plan.phrases]


def test_phrase_lengths_of_a_stretch():
    assert [_split(n, 4) for n in range(1, 10)] == [
        [1], [2], [3], [4], [3, 2], [4, 2], [4, 3], [4, 4], [4, 3, 2]]
    assert _split(8, 8) == [8] and _split(11, 8) == [8, 3] and _split(13, 8) == [8, 3, 2]


def test_a_steady_picture_states_a_phrase_and_returns_it():
    plan = FormPlan.choose(8, [8] * 8, seed=0)
    assert spans(plan) == [(0, 4), (4, 4)] and plan.labels == "AA"
    assert plan.phrases[1].source == 0
    # new material answers itself (bar 2 the first bar; bar 3 the second, or not, by the seed);
    # the return replays the first statement bar for bar
    assert plan.pitched_source[:3] == [-1, -1, 0] and plan.pitched_source[3] in (-1, 1)
    assert plan.pitched_source[4:] == [0, 1, 2, 3]
    # a fill on the last beat before the return; none at the end of the piece
    assert plan.fills[3] == tuple(range(BAR - FILL_TICKS, BAR))
    assert plan.fills[7] == () and all(f == () for f in plan.fills[:3])
    assert plan == FormPlan.choose(8, [8] * 8, seed=0)          # deterministic
    # the seed varies the answer, and may make the 8 bars one period (see below)
    assert {tuple(FormPlan.choose(8, [8] * 8, seed=s).pitched_source) for s in range(12)} == {
        (-1, -1, 0, -1, 0, 1, 2, 3), (-1, -1, 0, 1, 0, 1, 2, 3), (-1, -1, 0, 1, 0, 1, 2, -1)}


def test_a_different_picture_is_a_new_section():
    plan = FormPlan.choose(8, [2] * 4 + [14] * 4)
    assert plan.labels == "AB" and plan.phrases[1].source is None
    assert plan.pitched_source[4] == -1 and plan.pitched_source[6] == 4   # B answers itself
    assert plan.fills[3] == tuple(range(BAR - SECTION_FILL_TICKS, BAR))  # a longer fill


def test_phrases_start_on_cuts_and_sections_return_when_the_picture_does():
    # shot A (calm), a cut to shot B (busy), a cut back to A; a cut in bar 1 is too soon after
    # the phrase start to start one, a cut 2 ticks after bar 4's line starts the phrase there
    densities = [4] * 4 + [14] * 4 + [4] * 4
    cuts = [BAR + 5, 4 * BAR + 2, 8 * BAR - 3]
    plan = FormPlan.choose(12, densities, cuts, seed=1)
    assert spans(plan) == [(0, 4), (4, 4), (8, 4)] and plan.labels == "ABA"
    assert [p.cut for p in plan.phrases] == [False, True, True]
    assert plan.phrases[2].source == 0 and plan.pitched_source[8:] == [0, 1, 2, 3]
    # without the cut back, the calm bars still match shot A's phrase
    assert FormPlan.choose(12, densities, cuts[:2], seed=1).labels == "ABA"
    # a cut off the 4-bar grid moves the phrases: 4 + 2 before it, 4 after it
    assert spans(FormPlan.choose(10, [8] * 10, [6 * BAR])) == [(0, 4), (4, 2), (6, 4)]
    assert spans(FormPlan.choose(10, [8] * 10)) == [(0, 4), (4, 4), (8, 2)]
    # a cut too close to the end starts no phrase either
    assert spans(FormPlan.choose(6, [8] * 6, [5 * BAR])) == [(0, 4), (4, 2)]
    assert MIN_PHRASE == 2


def test_a_new_shot_returns_only_what_began_a_shot():
    # phrases at bars 0 (start), 4 (continuing shot 1, busy), 8 (a cut, busy like bar 4's):
    # bar 8's phrase began a shot, bar 4's did not, so it is new (C), not a return of B
    densities = [4] * 4 + [14] * 4 + [14] * 4
    plan = FormPlan.choose(12, densities, [8 * BAR], seed=0)
    assert plan.labels == "ABC"
    assert FormPlan.choose(12, densities, [], seed=0).labels == "ABB"


def test_fills_on_cuts_and_strong_visual_beats():
    plan = FormPlan.choose(4, [8] * 4, cut_ticks=[BAR + 6],
                           beats={2 * BAR + 3: STRONG_BEAT, 2 * BAR + 9: STRONG_BEAT - 1})
    assert plan.fills[1] == (6,)           # the cut's own tick (no phrase starts there)
    assert plan.fills[2] == (3,)           # the strong beat, not the weak one
    assert plan.labels == "A"


def test_long_stretches_may_use_8_bar_periods():
    plans = [FormPlan.choose(16, [8] * 16, seed=s) for s in range(12)]
    lengths = {tuple(p.length for p in plan.phrases) for plan in plans}
    assert lengths == {(8, 8), (4, 4, 4, 4)}
    period = next(p for p in plans if p.phrases[0].length == 8)
    # an 8-bar period restates its first three bars in bars 5-7
    assert period.pitched_source[:8] == [-1, -1, 0, 1, 0, 1, 2, -1]
    assert period.pitched_source[8:] == list(range(8))


def test_the_same_plan_from_the_rhythm_and_from_the_targets():
    bars = [Bar(i * 2.0, 0.1, d) for i, d in enumerate([4, 4, 14, 14, 4, 4])]
    beats = [VisualBeat(1.0, 8, 0.5, 3), VisualBeat(4.1, 33, 1.0, 24, cut=True),
             VisualBeat(9.0, 72, 0.9, 12)]
    rhythm = VideoRhythm(12.0, 25.0, 120.0, 6, bars, beats, [4.1])
    plan = FormPlan.for_rhythm(rhythm, seed=3)
    assert plan == FormPlan.for_targets(Targets.from_rhythm(rhythm), seed=3)
    assert plan.fills[2] == (1,) and plan.fills[4] == (8,)
    assert plan.to_dict()["form"] == plan.labels
    assert plan.phrase_of(5) == len(plan.phrases) - 1
    with pytest.raises(IndexError):
        plan.phrase_of(6)


def test_free_music_keeps_one_form():
    assert FormPlan.choose(9).labels == "AAA"
    assert FormPlan.choose(0).phrases == []
