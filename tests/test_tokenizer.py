"""CPTokenizer: round trips on real MIDI, hand-checked density/strength, grammar properties."""

import miditoolkit
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vbgm_core.errors import InputError
from vbgm_core.music.instruments import GROUP_ID, GROUPS, group_of
from vbgm_core.music.tokenizer import (
    BAR,
    BEAT_T,
    EOS,
    MAX_DURATION,
    NOTE,
    CPTokenizer,
    bar_densities,
    onset_strengths,
    token_positions,
    tokens_errors,
)

TK = CPTokenizer()


def quantized_onsets(midi):
    """(bar, tick, group, pitch) of every note, quantized independently of the tokenizer."""
    onsets = set()
    for inst in midi.instruments:
        group = group_of(inst.program, inst.is_drum)
        if group is None:
            continue
        for n in inst.notes:
            onsets.add((int(round(n.start * 4 / midi.ticks_per_beat)), GROUP_ID[group], n.pitch))
    first_bar = min(t for t, _, _ in onsets) // 16
    return {((t - 16 * first_bar) // 16, t % 16, g, p) for t, g, p in onsets}


def decoded_onsets(midi):
    unit = midi.ticks_per_beat // 4
    return {(n.start // unit // 16, n.start // unit % 16, GROUP_ID[inst.name], n.pitch)
            for inst in midi.instruments for n in inst.notes}


def check_round_trip(path):
    original = miditoolkit.MidiFile(str(path))
    song = TK.encode(original)
    assert tokens_errors(song.tokens) == []
    decoded = TK.decode(song.tokens, song.tempo_bpm)
    expected = quantized_onsets(original)
    # Ticks with more than MAX_STRENGTH notes lose some; none of these files has such a tick.
    assert decoded_onsets(decoded) == expected
    unit = decoded.ticks_per_beat // 4
    for inst in decoded.instruments:
        for n in inst.notes:
            assert n.start % unit == 0 and (n.end - n.start) % unit == 0
            assert 1 <= (n.end - n.start) // unit <= MAX_DURATION
    assert decoded.tempo_changes[0].tempo == pytest.approx(song.tempo_bpm)
    # Encoding the decoded file gives the same tokens back.
    assert np.array_equal(TK.encode(decoded).tokens, song.tokens)


@pytest.mark.parametrize("name", ["train_filled_with_cash.mid", "coconut_run2.mid",
                                  "chuggachugga.mid", "pop909_001.mid"])
def test_round_trip_fixtures(fixtures, name):
    check_round_trip(fixtures / "midi" / name)


def test_round_trip_shared(shared):
    openmsx = sorted((shared / "data" / "openmsx").glob("*.mid"))
    genre = [shared / "data" / "midi_genre" / g / f for g, f in
             [("rock", "4353.mid"), ("pop", "10014.mid"), ("country", "1002.mid")]]
    checked = 0
    for path in openmsx + [p for p in genre if p.exists()]:
        try:
            check_round_trip(path)
            checked += 1
        except InputError as e:
            assert "time signature" in str(e)  # the only reason a shared file is refused
    assert checked >= 25


def make_midi(path, notes, tpb=96, program=0, drums=()):
    """Write a MIDI file of (start_16th, pitch, dur_16th) notes (piano) plus drum onsets."""
    midi = miditoolkit.MidiFile(ticks_per_beat=tpb)
    piano = miditoolkit.Instrument(program=program, name="p")
    unit = tpb // 4
    piano.notes = [miditoolkit.Note(80, p, s * unit, (s + d) * unit) for s, p, d in notes]
    kit = miditoolkit.Instrument(program=0, is_drum=True, name="d")
    kit.notes = [miditoolkit.Note(100, 36, s * unit, s * unit + 1) for s in drums]
    midi.instruments = [piano] + ([kit] if drums else [])
    midi.dump(str(path))
    return path


def test_density_and_strength_by_hand(tmp_path):
    # Bar 0: a 3-note chord at tick 0 (+ kick), a single note at tick 4, a kick at tick 8.
    # Bar 1: empty. Bar 2: one note at tick 15.
    notes = [(0, 60, 4), (0, 64, 4), (0, 67, 4), (4, 62, 2), (47, 70, 1)]
    path = make_midi(tmp_path / "hand.mid", notes, tpb=384, drums=(0, 8))
    song = TK.encode(path)
    assert bar_densities(song.tokens).tolist() == [3, 0, 1]
    assert onset_strengths(song.tokens).tolist() == [[0, 4], [4, 1], [8, 1], [47, 1]]
    beats = song.tokens[song.tokens[:, 0] == BEAT_T]
    assert (beats[:, 2] - 1).tolist() == [3, 2, 1, 1]  # density countdown within each bar
    assert song.n_bars == 3
    beat_index, timing = token_positions(song.tokens)
    assert beat_index[-1] == 12 and timing[-1] == 100
    assert beat_index[song.tokens[:, 0] == NOTE].tolist() == [0, 0, 0, 0, 1, 2, 11]


def test_leading_silence_is_dropped(tmp_path):
    song = TK.encode(make_midi(tmp_path / "late.mid", [(35, 60, 2)], tpb=480))
    assert song.n_bars == 1 and onset_strengths(song.tokens).tolist() == [[3, 1]]


@pytest.mark.parametrize("content, message", [
    (b"not a midi file at all", "not a readable MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x10\x00\x00\xff", "not a readable"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        TK.encode(path)
    assert str(path) in str(e.value)


def test_no_notes_and_other_meter(tmp_path):
    empty = tmp_path / "empty.mid"
    miditoolkit.MidiFile().dump(str(empty))
    with pytest.raises(InputError, match="no notes"):
        TK.encode(empty)
    waltz = make_midi(tmp_path / "waltz.mid", [(0, 60, 4)])
    midi = miditoolkit.MidiFile(str(waltz))
    midi.time_signature_changes = [miditoolkit.TimeSignature(3, 4, 0)]
    midi.dump(str(waltz))
    with pytest.raises(InputError, match="3/4"):
        TK.encode(waltz)


# --- grammar: any sequence the decoder accepts is a valid MIDI file -------------------------

bar_strategy = st.lists(  # one bar: sorted distinct ticks, each with distinct (group, pitch) notes
    st.tuples(st.integers(0, 15),
              st.lists(st.tuples(st.integers(1, 5), st.integers(0, 127), st.integers(1, 32)),
                       min_size=1, max_size=6, unique_by=lambda n: n[:2])),
    max_size=6, unique_by=lambda b: b[0])


def build(bars):
    rows = []
    for bar in bars:
        bar = sorted(bar)
        rows.append((BAR, 0, len(bar) + 1, 0, 0, 0, 0))
        for k, (tick, notes) in enumerate(bar):
            rows.append((BEAT_T, tick + 1, len(bar) - k + 1, len(notes), 0, 0, 0))
            rows += [(NOTE, 0, 0, 0, g, p + 1, d) for g, p, d in sorted(notes)]
    rows.append((EOS, 0, 0, 0, 0, 0, 0))
    return np.array(rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(bar_strategy, min_size=1, max_size=4))
def test_valid_sequences_decode_to_valid_midi(tmp_path_factory, bars):
    tokens = build(bars)
    assert tokens_errors(tokens) == []
    path = tmp_path_factory.mktemp("h") / "out.mid"
    TK.save_midi(tokens, path, tempo_bpm=100)
    midi = miditoolkit.MidiFile(str(path))
    n_notes = sum(len(b_notes) for bar in bars for _, b_notes in bar)
    assert sum(len(i.notes) for i in midi.instruments) == n_notes
    for inst in midi.instruments:
        assert inst.is_drum == (inst.name == "drums") and inst.name in GROUPS
        assert all(0 <= n.pitch < 128 and n.end > n.start for n in inst.notes)


@settings(max_examples=200, deadline=None)
@given(st.lists(bar_strategy, min_size=1, max_size=3), st.integers(0, 10_000),
       st.integers(0, 6), st.integers(0, 40))
def test_corrupted_sequences_are_rejected_or_valid(bars, where, column, value):
    tokens = build(bars)
    tokens[where % len(tokens), column] = value
    if tokens_errors(tokens):
        with pytest.raises(InputError, match="invalid token sequence"):
            TK.decode(tokens)
    else:
        midi = TK.decode(tokens)
        assert all(n.end > n.start for i in midi.instruments for n in i.notes)
