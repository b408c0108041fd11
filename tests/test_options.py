"""One options object: checked once, the same in every entry point, and really reaching the
generator (genre, control degree and temperature each change the music they should)."""

import numpy as np
import pytest

from vbgm_core.cli import get_parser
from vbgm_core.errors import InputError
from vbgm_core.media import media_duration
from vbgm_core.music.sampling import Sampling
from vbgm_core.music.tokenizer import NOTE
from vbgm_core.options import ScoreOptions
from vbgm_core.scorer import Scorer, model_genres


@pytest.fixture(scope="module")
def scorer():
    return Scorer.from_pretrained()


@pytest.fixture(scope="module")
def sample_rhythm(scorer, sample_clip):
    # 200 BPM: five bars from the 5.3 s bundled clip, enough for the control to show.
    return scorer.analyze(sample_clip, tempo=200)


def test_defaults_and_normalisation():
    o = ScoreOptions()
    assert (o.genre, o.instruments, o.control, o.tempo, o.seed) == (None, None, 0.7, None, 0)
    o = ScoreOptions(instruments="bass, drums", tempo="auto", control="0.5", seed="-3",
                     sampling=["pitch.temperature=0.8"])
    assert o.instruments == ("drums", "bass")          # the groups' order, whatever was given
    assert (o.tempo, o.control, o.seed) == (None, 0.5, -3)
    assert o.sampling.temperature["pitch"] == 0.8
    assert ScoreOptions(tempo="96").tempo == 96.0
    d = o.to_dict()
    assert d["instruments"] == ["drums", "bass"] and d["sampling"]["temperature"]["pitch"] == 0.8


@pytest.mark.parametrize("kwargs, message", [
    (dict(control=1.5), "control degree 1.5 is outside"),
    (dict(control="x"), "control degree must be a number"),
    (dict(tempo="abc"), "tempo must be 'auto' or a number"),
    (dict(tempo=400), "tempo 400 BPM is outside 30..300 BPM"),
    (dict(tempo=float("nan")), "tempo must be a finite number"),
    (dict(loudness=-70), "loudness -70 LUFS is outside -40..-5 LUFS"),
    (dict(music_gain_db=1e6), "music gain 1000000.0 is outside -60..24"),
    (dict(genre=""), "genre must be a genre name"),
    (dict(min_density=17), "min density 17 is outside 0..16"),
    (dict(instruments=""), "names no instrument"),
    (dict(instruments="drums,kazoo"), "unknown instrument"),
    (dict(seed=1.5), "seed must be a whole number"),
    (dict(seed="x"), "seed must be a whole number"),
    (dict(sampling=["pitch.top_p=2"]), "sampling setting"),
])
def test_bad_values_are_one_line_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message) as e:
        ScoreOptions(**kwargs)
    assert "\n" not in str(e.value)


def test_unknown_keyword_is_refused():
    with pytest.raises(InputError, match="unknown option.*colour"):
        ScoreOptions.from_kwargs(colour="red")
    assert ScoreOptions.from_kwargs(seed=None, genre="rock") == ScoreOptions(genre="rock")


def test_cli_flags_are_generated_from_the_options():
    parser = get_parser()
    for command in (["score", "v.mp4", "--midi", "m.mid"], ["batch", "v.mp4", "-o", "out"]):
        args = parser.parse_args(command + ["--genre", "rock", "--instruments", "drums",
                                            "--control", "0.2", "--tempo", "90", "--seed", "-7",
                                            "--sampling", "beat.top_p=0.5"])
        o = ScoreOptions.from_args(args)
        assert o == ScoreOptions(genre="rock", instruments=("drums",), control=0.2, tempo=90,
                                 seed=-7, sampling=Sampling.parse(["beat.top_p=0.5"]))
    unset = ScoreOptions.from_args(parser.parse_args(["score", "v.mp4"]))
    assert unset == ScoreOptions()


def test_genres_are_read_without_loading_the_model(scorer):
    assert model_genres() == scorer.genres and "pop" in scorer.genres


def test_the_genre_reaches_the_generator(scorer, sample_rhythm):
    """Same seed, free music: another genre gives other music (a pipeline that always used
    genre 0 would give the same tokens)."""
    runs = {g: scorer.generate(sample_rhythm, ScoreOptions(genre=g, control=0.0, seed=5))[0]
            for g in scorer.genres}
    distinct = {r.tobytes() for r in runs.values()}
    assert len(distinct) == len(scorer.genres)


def test_control_degree_between_0_and_1_lies_between(scorer, sample_rhythm):
    """Density error of C = 0.7 is strictly between C = 1's and C = 0's (over several seeds)."""
    def error(control):
        errs = []
        for seed in range(6):
            options = ScoreOptions(genre="pop", control=control, seed=seed)
            tokens, midi = scorer.generate(sample_rhythm, options)
            errs.append(scorer.report(midi, sample_rhythm, tokens, options)
                        ["control_error"]["density"])
        return float(np.mean(errs))
    free, some, full = error(0.0), error(0.7), error(1.0)
    assert full < some < free, (full, some, free)


def test_temperature_changes_the_spread_of_choices(scorer, sample_rhythm):
    def entropy(temperature):
        options = ScoreOptions(genre="pop", control=1.0, seed=1, sampling=[
            f"pitch.temperature={temperature}", "pitch.top_p=1"])
        tokens, _ = scorer.generate(sample_rhythm, options)
        pitches = tokens[tokens[:, 0] == NOTE, 5]
        p = np.bincount(pitches) / len(pitches)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())
    assert entropy(0.2) < entropy(3.0)


def test_min_density_reaches_the_music(scorer, sample_rhythm):
    """The user's floor holds in every whole bar of the scored music, and 0 lets bars thin out
    (a Scorer that ignored ``min_density`` would give neither)."""
    import dataclasses

    from vbgm_core.metrics.grid import bar_densities, grid_notes

    # A still picture: every bar asks for silence, so only the floor brings notes.
    calm = dataclasses.replace(sample_rhythm, bars=[dataclasses.replace(b, density=0)
                                                    for b in sample_rhythm.bars])
    full_bars = int(calm.duration_s * calm.tempo_bpm / 240 + 1e-6)

    def densities(floor):
        result = scorer.score(None, rhythm=calm, render=False,
                              options=ScoreOptions(control=1.0, seed=2, min_density=floor))
        return bar_densities(grid_notes(result.midi), full_bars)

    assert min(densities(12)) >= 12
    assert min(densities(0)) < 12


def test_loudness_reaches_the_audio(scorer, sample_rhythm):
    """The rendered music is mastered to the user's loudness, not the default's."""
    from vbgm_core.audio.master import integrated_loudness

    options = ScoreOptions(seed=1, loudness=-30.0)
    result = scorer.score(None, rhythm=sample_rhythm, options=options)
    assert integrated_loudness(result.audio, result.sample_rate) == pytest.approx(-30.0, abs=1.0)
    assert result.report["quality"]["loudness_lufs"] == pytest.approx(-30.0, abs=1.0)


def test_the_python_api_takes_a_dict_of_options_and_needs_a_rhythm(scorer, sample_rhythm,
                                                                  sample_clip, tmp_path):
    """Issue 27: ``Scorer.generate(None, ...)`` was an AttributeError inside harmony.py; a dict
    of options is as good as a ScoreOptions in ``generate`` and ``score_video``."""
    from vbgm_core.api import score_video

    with pytest.raises(TypeError, match="needs the video's rhythm, a vbgm_core.video.rhythm."
                       "VideoRhythm"):
        scorer.generate(None, ScoreOptions())
    with pytest.raises(TypeError, match="a dict of its fields, not str"):
        scorer.generate(sample_rhythm, "rock")
    as_dict, _ = scorer.generate(sample_rhythm, {"genre": "rock", "seed": 4})
    as_options, _ = scorer.generate(sample_rhythm, ScoreOptions(genre="rock", seed=4))
    assert as_dict.tobytes() == as_options.tobytes()
    result = score_video(sample_clip, out_midi=tmp_path / "m.mid", options={"genre": "rock"},
                         scorer=scorer, render=False, end=2)
    assert result.report["genre"] == "rock" and (tmp_path / "m.mid").is_file()


def test_the_python_api_refuses_nan_and_says_when_a_range_is_cut(scorer, sample_clip,
                                                                tmp_path):
    """Issue 27: NaN and infinities were taken as a range (``end=nan``: the whole clip) or a
    re-roll time (a ValueError); an end past the video was cut without a word."""
    import warnings

    from vbgm_core.api import score_video
    from vbgm_core.video.rhythm import RangeWarning, analyze_video

    for kwargs, message in ((dict(start=float("nan")), "start must be a finite number"),
                            (dict(end=float("inf")), "end must be a finite number"),
                            (dict(end=float("nan")), "end must be a finite number")):
        with pytest.raises(InputError, match=message):
            analyze_video(sample_clip, **kwargs)
    take = score_video(sample_clip, out_midi=tmp_path / "take.mid", scorer=scorer,
                       render=False).midi_path
    for keep in (float("nan"), float("inf")):
        with pytest.raises(InputError, match="keep-until must be a finite number"):
            score_video(sample_clip, out_midi=tmp_path / "new.mid", scorer=scorer, render=False,
                        continue_from=take, keep_until=keep, seed=1)
    with pytest.warns(RangeWarning, match=r"end 60 s is past the end of the video \(5\.\d+ s\)"):
        rhythm = analyze_video(sample_clip, start=1, end=60)
    assert rhythm.start_s == 1 and rhythm.duration_s < 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyze_video(sample_clip, end=2)   # inside the video: no word
        # the container's duration (its audio runs a frame past the picture): "to the end"
        analyze_video(sample_clip, end=media_duration(sample_clip))
