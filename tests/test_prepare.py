"""`vbgm prepare` on a folder of good and broken MIDI files."""

import json
import shutil

import miditoolkit
import numpy as np
import pytest

from vbgm_core.cli import main
from vbgm_core.errors import InputError
from vbgm_core.music.tokenizer import VOCAB_SIZES, CPTokenizer
from vbgm_core.training.data import TokenDataset, prepare


def write_notes(path, notes, drums=False, program=0, tpb=480):
    midi = miditoolkit.MidiFile(ticks_per_beat=tpb)
    inst = miditoolkit.Instrument(program=program, is_drum=drums)
    inst.notes = [miditoolkit.Note(90, p, s, e) for s, p, e in notes]
    midi.instruments = [inst]
    midi.dump(str(path))


@pytest.fixture
def midi_folder(tmp_path, fixtures):
    root = tmp_path / "midi"
    (root / "rock").mkdir(parents=True)
    (root / "pop").mkdir()
    for name in ("train_filled_with_cash.mid", "coconut_run2.mid"):
        shutil.copy(fixtures / "midi" / name, root / "rock" / name)
    shutil.copy(fixtures / "midi" / "chuggachugga.mid", root / "pop" / "chugga.mid")
    shutil.copy(fixtures / "midi" / "pop909_001.mid", root / "pop" / "pop909.MID")
    (root / "pop" / "notes.txt").write_text("not a midi file and not named like one")
    (root / "pop" / "text.mid").write_text("this is not MIDI")
    data = (fixtures / "midi" / "coconut_run2.mid").read_bytes()
    (root / "rock" / "truncated.mid").write_bytes(data[:len(data) // 3])
    miditoolkit.MidiFile().dump(str(root / "rock" / "silent.mid"))
    write_notes(root / "rock" / "drums.mid", [(i * 120, 36, i * 120 + 60) for i in range(64)], drums=True)
    # One hour of one note per beat at 120 BPM: 1,800 bars, over the limit.
    write_notes(root / "pop" / "hour.mid", [(i * 480, 60, i * 480 + 240) for i in range(7200)])
    return root


def test_prepare_good_and_broken(midi_folder, tmp_path):
    out = tmp_path / "ds"
    summary = prepare(midi_folder, out, workers=2)
    assert summary.n_songs == 4
    assert summary.per_genre == {"pop": 2, "rock": 2}
    reasons = {s["path"]: s["reason"] for s in summary.skipped}
    assert set(reasons) == {"pop/text.mid", "rock/truncated.mid", "rock/silent.mid",
                            "rock/drums.mid", "pop/hour.mid"}
    assert "not a readable MIDI" in reasons["pop/text.mid"]
    assert "no notes" in reasons["rock/silent.mid"]
    assert "drums only" in reasons["rock/drums.mid"]
    assert "too long" in reasons["pop/hour.mid"]
    assert all(str(midi_folder) in r for r in reasons.values())  # each names its file

    ds = TokenDataset(out)
    assert ds.genres == ["pop", "rock"] and len(ds) == 4
    assert ds.tokens.dtype == np.uint8 and ds.tokens.shape[0] == summary.n_tokens
    row = next(r for r in ds.index if r["path"] == "rock/coconut_run2.mid")
    song = CPTokenizer().encode(midi_folder / "rock" / "coconut_run2.mid")
    assert np.array_equal(ds.song(row["song"]), song.tokens)
    assert row["genre"] == "rock" and row["n_bars"] == song.n_bars
    assert sum(len(ds.split_ids(s)) for s in ("train", "valid", "test")) == 4
    hist = ds.stats["density_hist"]
    assert len(hist) == 17 and sum(hist) == sum(r["n_bars"] for r in ds.index)
    assert set(ds.stats["density_hist_per_genre"]) == {"pop", "rock"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["vocab_sizes"] == list(VOCAB_SIZES) and len(meta["skipped"]) == 5


def test_cli_refuses_existing_output_and_empty_folder(midi_folder, tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    assert main(["prepare", str(midi_folder), "-o", str(out)]) == 2
    assert "output exists" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prepare", str(empty), "-o", str(tmp_path / "x")]) == 2
    assert "no MIDI files" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_all_broken_leaves_no_dataset(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.mid").write_text("nope")
    with pytest.raises(InputError, match="none of the 1 MIDI files"):
        prepare(folder, tmp_path / "ds", workers=1)
    assert list(tmp_path.iterdir()) == [folder]  # no dataset, no temporary left behind


def test_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="not a vbgm dataset"):
        TokenDataset(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 0}))
    with pytest.raises(InputError, match="incompatible"):
        TokenDataset(tmp_path)
