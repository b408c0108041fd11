"""Training-time augmentation on a real song: transposition, control dropout, genre balance."""

import numpy as np
import torch

from vbgm_core.music.instruments import GROUP_ID
from vbgm_core.music.sampler import PITCH_RANGE
from vbgm_core.music.tokenizer import ATTRIBUTES, NOTE, CPTokenizer
from vbgm_core.training.augment import drop_controls, transpose
from vbgm_core.training.data import TokenDataset, prepare
from vbgm_core.training.train import CropSampler

PITCH, INST, TYPE = (ATTRIBUTES.index(a) for a in ("pitch", "instrument", "type"))


def song_tokens(fixtures):
    return CPTokenizer().encode(fixtures / "midi" / "coconut_run2.mid").tokens


def test_transposition_moves_pitched_notes_only(fixtures):
    tokens = song_tokens(fixtures).astype(np.int64)
    moved, shift = transpose(tokens, 3, PITCH_RANGE)
    notes = tokens[:, TYPE] == NOTE
    drums = notes & (tokens[:, INST] == GROUP_ID["drums"])
    pitched = notes & ~drums
    assert shift == 3 and pitched.any() and drums.any()
    assert (moved[pitched, PITCH] == tokens[pitched, PITCH] + 3).all()
    assert (moved[drums, PITCH] == tokens[drums, PITCH]).all()
    assert (moved[~notes] == tokens[~notes]).all()
    assert tokens is not moved                           # the dataset's copy is untouched


def test_transposition_is_clamped_to_the_instruments_ranges(fixtures):
    tokens = song_tokens(fixtures).astype(np.int64)
    moved, shift = transpose(tokens, 60, PITCH_RANGE)    # far out: clamped, never past a range
    assert 0 <= shift < 60
    notes = moved[:, TYPE] == NOTE
    for name, (lo, hi) in PITCH_RANGE.items():
        if name == "drums":
            continue
        mine = notes & (moved[:, INST] == GROUP_ID[name])
        if mine.any():
            original = tokens[mine, PITCH] - 1
            pitches = moved[mine, PITCH] - 1
            assert ((pitches >= min(lo, original.min())) & (pitches <= max(hi, original.max()))).all()
    assert transpose(tokens, -60, PITCH_RANGE)[1] <= 0


def test_control_dropout_hides_inputs_not_targets():
    batch = {"tokens": torch.randint(1, 5, (4, 64, 7)), "timing": torch.randint(1, 100, (4, 64))}
    before = batch["tokens"].clone()
    tokens, timing = drop_controls(batch, 1.0, 0.5, torch.Generator().manual_seed(0))
    assert (timing == 0).all()
    d, s = ATTRIBUTES.index("density"), ATTRIBUTES.index("strength")
    hidden = (tokens[..., d] == 0).float().mean().item()
    assert 0.3 < hidden < 0.7
    assert (batch["tokens"] == before).all()              # targets keep their values
    kept = [i for i in range(7) if i not in (d, s)]
    assert (tokens[..., kept] == before[..., kept]).all()
    same = drop_controls(batch, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert same[0] is batch["tokens"] and same[1] is batch["timing"]


def test_genre_balance_evens_the_genres_shares(fixtures, tmp_path):
    import shutil
    for genre, names in (("pop", ["pop909_001.mid"]), ("rock", ["coconut_run2.mid"])):
        (tmp_path / "midi" / genre).mkdir(parents=True)
        for n in names:
            shutil.copy(fixtures / "midi" / n, tmp_path / "midi" / genre / n)
    prepare(tmp_path / "midi", tmp_path / "data", workers=1)
    data = TokenDataset(tmp_path / "data")
    rows = list(range(len(data)))
    by_length = CropSampler(data, rows, 64, 0.0).weights
    balanced = CropSampler(data, rows, 64, 0.0, genre_balance=1.0).weights
    lengths = [data.index[r]["length"] for r in rows]
    assert lengths[0] != lengths[1]
    assert abs(by_length[0] / by_length[1] - lengths[0] / lengths[1]) < 1e-6
    assert torch.allclose(balanced, torch.full_like(balanced, 0.5))
