"""Re-roll from here: the kept bars are the previous take's, bit for bit; the rest is new."""

import miditoolkit
import numpy as np
import pytest

from vbgm_core.errors import InputError
from vbgm_core.music.reroll import load_prefix, splice
from vbgm_core.music.tokenizer import BAR, CPTokenizer, tokens_errors


def take(tmp_path, fixtures, name="pop909_001.mid", bars=8, tempo=100.0):
    """A vbgm-style take: a real song's first bars decoded by our tokenizer, leading silence
    kept as two empty bars."""
    song = CPTokenizer().encode(fixtures / "midi" / name).tokens
    starts = np.flatnonzero(song[:, 0] == BAR)
    body = song[:starts[bars - 2]]
    empty = np.zeros((2, 7), np.int64)
    empty[:, 0], empty[:, 2] = BAR, 1
    tokens = np.concatenate([empty, body, [[4, 0, 0, 0, 0, 0, 0]]])
    assert tokens_errors(tokens) == []
    path = tmp_path / f"take_{name}.mid"
    CPTokenizer().save_midi(tokens, path, tempo)
    return path, tokens


def notes(midi):
    return sorted((i.name, n.start, n.end, n.pitch, n.velocity)
                  for i in midi.instruments for n in i.notes)


def test_prefix_keeps_whole_bars_and_their_place(tmp_path, fixtures):
    path, tokens = take(tmp_path, fixtures)
    bar_s = 240 / 100.0
    prefix = load_prefix(path, 3.5 * bar_s)          # mid-bar 4: bars 0-3 are kept
    assert prefix.n_bars == 4 and prefix.boundary_s == pytest.approx(4 * bar_s)
    starts = np.flatnonzero(tokens[:, 0] == BAR)
    assert np.array_equal(prefix.tokens, tokens[:starts[4]])   # leading silence kept in place
    assert load_prefix(path, 4 * bar_s).n_bars == 4           # on a bar line: exactly there


def test_splice_keeps_old_notes_before_the_boundary(tmp_path, fixtures):
    path, _ = take(tmp_path, fixtures)
    other, _ = take(tmp_path, fixtures, "coconut_run2.mid")
    prefix = load_prefix(path, 10.0)
    old = miditoolkit.MidiFile(str(path))
    for i, n in enumerate(n for inst in old.instruments for n in inst.notes):
        n.velocity = 20 + i % 90                      # velocities must survive too
    old.dump(str(path))
    prefix = load_prefix(path, 10.0)
    new = splice(prefix, miditoolkit.MidiFile(str(other)))
    b = prefix.boundary_tick
    assert [x for x in notes(new) if x[1] < b] == [x for x in notes(old) if x[1] < b]
    after = [x for x in notes(new) if x[1] >= b]
    assert after and after == [x for x in notes(miditoolkit.MidiFile(str(other))) if x[1] >= b]


@pytest.mark.parametrize("keep", [0.0, 1000.0])
def test_keeping_nothing_or_everything_is_refused(tmp_path, fixtures, keep):
    path, _ = take(tmp_path, fixtures)
    with pytest.raises(InputError, match="keeps (nothing|the whole take)"):
        load_prefix(path, keep)


def test_a_foreign_file_is_refused(tmp_path, fixtures):
    foreign = miditoolkit.MidiFile(ticks_per_beat=96)
    foreign.tempo_changes = [miditoolkit.TempoChange(120, 0), miditoolkit.TempoChange(90, 960)]
    foreign.dump(str(tmp_path / "foreign.mid"))
    with pytest.raises(InputError, match="not a take written by vbgm"):
        load_prefix(tmp_path / "foreign.mid", 4.0)
    (tmp_path / "x.mid").write_text("no")
    with pytest.raises(InputError, match="not a readable MIDI file"):
        load_prefix(tmp_path / "x.mid", 4.0)


def test_reroll_through_the_scorer_keeps_the_start_and_changes_the_rest(tmp_path, sample_clip):
    from vbgm_core.api import score_video
    from vbgm_core.scorer import Scorer

    scorer = Scorer.from_pretrained()
    first = score_video(sample_clip, out_midi=tmp_path / "a.mid", scorer=scorer, seed=1,
                        tempo=200, render=False)
    again = score_video(sample_clip, out_midi=tmp_path / "b.mid", scorer=scorer, seed=2,
                        continue_from=tmp_path / "a.mid", keep_until=2.0, render=False)
    boundary = again.report["continued_from"]["kept_s"]
    assert boundary == pytest.approx(2.4)                   # the bar line after 2.0 s
    a, b = (miditoolkit.MidiFile(str(tmp_path / n)) for n in ("a.mid", "b.mid"))
    tick = round(boundary * 200 / 60 * a.ticks_per_beat)
    assert [x for x in notes(b) if x[1] < tick] == [x for x in notes(a) if x[1] < tick]
    assert [x for x in notes(b) if x[1] >= tick] != [x for x in notes(a) if x[1] >= tick]
    assert again.rhythm.n_bars == first.rhythm.n_bars and again.rhythm.tempo_bpm == \
        pytest.approx(200, abs=1e-3)
    end = max(n.end for i in b.instruments for n in i.notes)
    assert end <= round(first.rhythm.duration_s * 200 / 60 * b.ticks_per_beat)
    assert again.report["harmony"]["key"] == first.report["harmony"]["key"]
