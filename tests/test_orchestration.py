"""Programs per genre (music/orchestration.py and its asset, assets/orchestration.json)."""

from collections import Counter
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from vbgm_core.errors import InputError
from vbgm_core.music.instruments import GROUPS, group_of
from vbgm_core.music.orchestration import (
    DRUM_KITS,
    GM_PROGRAM_NAMES,
    PRESETS,
    apply_programs,
    choose_programs,
    distribution,
    orchestration_stats,
    parse_programs,
    program_name,
)
from vbgm_core.music.tokenizer import CPTokenizer

GENRES = ("country", "pop", "rap_hip_hop", "rnb_soul", "rock")
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def _tables():
    stats = orchestration_stats()
    return {"overall": stats["overall"], **stats["genres"]}


def total_variation(a, b):
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def test_every_distribution_sums_to_one_over_programs_of_its_group():
    tables = _tables()
    assert set(tables) == {"overall", *GENRES}
    for genre, table in tables.items():
        assert set(table) == set(GROUPS)
        for group, shares in table.items():
            assert sum(shares.values()) == pytest.approx(1, abs=1e-3), (genre, group)
            assert min(shares.values()) >= 0.01      # programs under 1% were dropped
            for program in map(int, shares):
                if group == "drums":
                    assert program in DRUM_KITS
                else:
                    assert group_of(program, False) == group, (genre, group, program)


def test_rock_guitars_are_distorted_country_guitars_acoustic():
    # a property of the training data that makes the genres audible
    rock, country = (orchestration_stats()["genres"][g]["guitar"] for g in ("rock", "country"))
    assert max(rock, key=rock.get) == "30" and max(country, key=country.get) == "25"
    assert rock["30"] + rock["29"] > 0.4
    assert country["30"] + country["29"] < 0.1
    assert total_variation(rock, country) > 0.4


def test_choice_is_seeded_per_seed_and_genre():
    assert choose_programs("rock", 7) == choose_programs("rock", 7)
    assert set(choose_programs("rock", 7)) == set(GROUPS)
    guitars = {choose_programs("rock", seed)["guitar"] for seed in range(30)}
    assert len(guitars) >= 3


@pytest.mark.parametrize("genre, table", [("rock", "rock"), ("country", "country"),
                                          ("synthwave", "overall")])
def test_many_seeds_reproduce_the_data_distribution(genre, table):
    n = 3000
    draws = [choose_programs(genre, seed) for seed in range(n)]
    for group in GROUPS:
        shares = _tables()[table][group]
        counts = Counter(str(d[group]) for d in draws)
        freq = {p: c / n for p, c in counts.items()}
        assert set(freq) <= set(shares)
        assert total_variation(freq, shares) < 0.06, group
        for program, share in shares.items():
            assert abs(freq.get(program, 0.0) - share) < 0.03, (group, program)


def test_an_unknown_genre_uses_the_overall_distribution():
    for group in GROUPS:
        programs, p = distribution("synthwave")[group]
        overall = orchestration_stats()["overall"][group]
        assert dict(zip(map(str, programs), p)) == pytest.approx(overall, abs=1e-3)


def test_overrides_win_and_leave_the_other_groups_as_drawn():
    drawn = choose_programs("pop", 11)
    chosen = choose_programs("pop", 11, "guitar=30, bass=38")
    assert chosen == {**drawn, "guitar": 30, "bass": 38}
    assert choose_programs("pop", 11, {"drums": 25}) == {**drawn, "drums": 25}
    assert choose_programs("pop", 11, "acoustic,bass=35") == {**PRESETS["acoustic"], "bass": 35}


def test_parse_programs():
    assert parse_programs("guitar=30,bass=38") == {"guitar": 30, "bass": 38}
    assert parse_programs(" Guitar = 30 ,") == {"guitar": 30}
    assert parse_programs({"strings": 73}) == {"strings": 73}
    assert parse_programs(None) == {} and parse_programs("") == {}
    assert parse_programs("electric") == PRESETS["electric"]


@pytest.mark.parametrize("spec, message", [
    ("violin=40", "unknown instrument group 'violin'"),
    ("guitar=128", "guitar=128 is outside the General MIDI programs 0..127"),
    ("guitar=-1", "outside"),
    ("guitar:30", "malformed entry 'guitar:30'"),
    ("guitar=thirty", "malformed"),
    ("guitar=30=1", "malformed"),
    ("orchestral", "unknown preset 'orchestral'"),
    ("drums=3", "drums=3 is not a drum kit"),
    ({"guitar": "30"}, "is not a program number"),
    ({"guitar": 200}, "outside"),
    (30, "expected text"),
])
def test_parse_errors_name_the_problem_in_one_line(spec, message):
    with pytest.raises(InputError, match=message) as error:
        parse_programs(spec)
    assert "\n" not in str(error.value)


def _five_group_midi():
    """A two-bar song with a note in every group, through the tokenizer (as the scorer has it)."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    for program, is_drum, pitch in ((0, True, 36), (0, False, 60), (25, False, 55),
                                    (33, False, 40), (48, False, 67)):
        notes = [miditoolkit.Note(90, pitch, t, t + 240) for t in (0, 960, 1920, 2880)]
        midi.instruments.append(miditoolkit.Instrument(program=program, is_drum=is_drum, notes=notes))
    tokenizer = CPTokenizer()
    return tokenizer, tokenizer.decode(tokenizer.encode(midi).tokens)


def test_apply_programs_sets_programs_and_names_on_decoded_midi(tmp_path):
    tokenizer, midi = _five_group_midi()
    tokens = tokenizer.encode(midi).tokens
    programs = {"drums": 25, "piano": 4, "guitar": 30, "bass": 38, "strings": 81}
    assert apply_programs(midi, programs) is midi
    got = {inst.name: (inst.program, inst.is_drum) for inst in midi.instruments}
    assert got == {"drums: TR-808 Kit": (25, True), "piano: Electric Piano 1": (4, False),
                   "guitar: Distortion Guitar": (30, False), "bass: Synth Bass 1": (38, False),
                   "strings: Lead 2 (sawtooth)": (81, False)}
    # the notes still read as the same five groups, also from a file
    midi.dump(str(tmp_path / "x.mid"))
    assert np.array_equal(tokenizer.encode(str(tmp_path / "x.mid")).tokens, tokens)
    # again, by the names it gave: only the named group changes
    apply_programs(midi, {"guitar": 25})
    assert [i.program for i in midi.instruments] == [25, 4, 25, 38, 81]
    assert midi.instruments[2].name == "guitar: Acoustic Guitar (steel)"


def test_apply_programs_leaves_groups_it_is_not_given():
    _, midi = _five_group_midi()
    apply_programs(midi, {"bass": 35})
    assert [i.program for i in midi.instruments] == [0, 0, 25, 35, 48]
    assert [i.name for i in midi.instruments] == ["drums", "piano", "guitar",
                                                  "bass: Fretless Bass", "strings"]


def test_program_names():
    assert len(GM_PROGRAM_NAMES) == len(set(GM_PROGRAM_NAMES)) == 128
    assert [GM_PROGRAM_NAMES[p] for p in (0, 25, 30, 33, 48, 73, 105, 127)] == [
        "Acoustic Grand Piano", "Acoustic Guitar (steel)", "Distortion Guitar",
        "Electric Bass (finger)", "String Ensemble 1", "Flute", "Banjo", "Gunshot"]
    assert program_name("drums", 0) == "Standard Kit" and program_name("bass", 0) == GM_PROGRAM_NAMES[0]


def test_every_program_the_asset_can_choose_is_in_fluidr3():
    fluidsynth = pytest.importorskip("fluidsynth")
    if not FLUIDR3.is_file():
        pytest.skip(f"needs {FLUIDR3}")
    synth = fluidsynth.Synth()
    try:
        font = synth.sfload(str(FLUIDR3))
        for table in _tables().values():
            for group, shares in table.items():
                bank = 128 if group == "drums" else 0
                for program in map(int, shares):
                    assert synth.sfpreset_name(font, bank, program), (group, program)
        assert all(synth.sfpreset_name(font, 128, kit) for kit in DRUM_KITS)
        assert all(synth.sfpreset_name(font, 128 if g == "drums" else 0, p)
                   for preset in PRESETS.values() for g, p in preset.items())
    finally:
        synth.delete()


def test_the_scorer_plays_the_genres_programs_and_says_which(sample_clip, tmp_path):
    """Through the real pipeline: each piece's tracks carry programs drawn from its genre (or
    the user's), the MIDI names them, the report lists them, and the stems are named by them."""
    import subprocess

    from conftest import vbgm_command

    from vbgm_core.api import Scorer, ScoreOptions

    scorer = Scorer.from_pretrained()
    rhythm = scorer.analyze(sample_clip, tempo=200)
    options = ScoreOptions(genre="rock", seed=4, programs="guitar=30")
    tokens, midi = scorer.generate(rhythm, options)
    played = {inst.name.split(":")[0]: inst for inst in midi.instruments}
    assert played["guitar"].program == 30 and played["guitar"].name == "guitar: Distortion Guitar"
    drawn = choose_programs("rock", 4, {"guitar": 30})
    assert {g: i.program for g, i in played.items()} == {g: drawn[g] for g in played}
    report = scorer.report(midi, rhythm, tokens, options)
    assert report["programs"]["guitar"] == {"program": 30, "name": "Distortion Guitar"}
    # the same seed gives the same sounds; the programs are the option's, not the renderer's
    assert [i.program for i in scorer.generate(rhythm, options)[1].instruments] == \
        [i.program for i in midi.instruments]

    out = tmp_path / "stems"
    subprocess.run([vbgm_command(), "score", str(sample_clip), "--stems", str(out), "--genre",
                    "rock", "--seed", "4", "--programs", "guitar=30", "--progress", "none"],
                   check=True, capture_output=True)
    assert "guitar_distortion_guitar.wav" in {p.name for p in out.iterdir()}


@pytest.mark.parametrize("spec, message", [("guitar=300", "outside the General MIDI"),
                                           ("kazoo=3", "unknown"), ("drums=5", "drum kit")])
def test_bad_programs_are_one_line_option_errors(spec, message):
    from vbgm_core.options import ScoreOptions

    with pytest.raises(InputError, match=message):
        ScoreOptions(programs=spec)
