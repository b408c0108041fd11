"""Music statistics of a model's free generations against held-out songs, per genre.

    python scripts/model_card_stats.py data/midi_genre --model vbgm_core/assets/model.safetensors \
        --pieces 4 --bars 16 -o docs/model_stats.json

For each genre: N pieces generated without video control (C = 0, all five instruments), and the
dataset's `test` songs of that genre (their first ``--bars`` bars). Reports pitch-class entropy,
grooving similarity, notes per bar, drum onsets per bar and pitch range, and prints the
model card's checks: entropy and grooving within 25% of the held-out values, notes per bar
inside the data's interquartile range, genres measurably different.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from vbgm_core.api import load_scoring_model
from vbgm_core.data import TokenDataset
from vbgm_core.files import atomic_path
from vbgm_core.metrics import grid_notes, grooving_similarity, pitch_class_entropy
from vbgm_core.music.instruments import GROUPS
from vbgm_core.music.tokenizer import BAR, TYPE, CPTokenizer
from vbgm_core.sample import ControlledSampler, Sampling, Targets

TK = CPTokenizer()


def first_bars(tokens, n_bars):
    """Tokens of the first ``n_bars`` bars, closed with EOS."""
    bars = np.flatnonzero(tokens[:, TYPE] == BAR)
    end = bars[n_bars] if len(bars) > n_bars else len(tokens) - 1
    return np.concatenate([tokens[:end], tokens[-1:]])


def piece_stats(tokens, n_bars):
    midi = TK.decode(tokens, 120.0)
    notes = grid_notes(midi)
    drum_onsets = len(np.unique(notes.tick[notes.is_drum]))
    pitched = notes.pitch[~notes.is_drum]
    return {"pitch_entropy": pitch_class_entropy(midi), "groove_similarity": grooving_similarity(midi),
            "notes_per_bar": len(notes.tick) / n_bars, "drum_onsets_per_bar": drum_onsets / n_bars,
            "pitch_range": float(np.ptp(pitched)) if len(pitched) else 0.0}


def summarise(rows):
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--model", default=None)
    p.add_argument("--pieces", type=int, default=4)
    p.add_argument("--bars", type=int, default=16)
    p.add_argument("--songs", type=int, default=20, help="held-out songs per genre at most")
    p.add_argument("--sampling", nargs="+", default=None, metavar="ATTR.SETTING=VALUE",
                   help="sampling overrides, as `vbgm score --sampling`")
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args()
    ds = TokenDataset(args.data)
    model, extra = load_scoring_model(args.model)
    sampling = Sampling.parse(args.sampling)
    result = {"model": extra, "bars": args.bars, "sampling": vars(sampling), "genres": {}}
    test = ds.split_ids("test")
    for g, genre in enumerate(extra["genres"]):
        songs = [i for i in test if ds.index[i]["genre"] == genre][:args.songs]
        held = [piece_stats(first_bars(ds.song(i), args.bars), args.bars) for i in songs]
        gen = [piece_stats(ControlledSampler(model, g, GROUPS, 0.0, seed, sampling).generate(
            Targets(args.bars)), args.bars) for seed in range(args.pieces)]
        npb = [r["notes_per_bar"] for r in held]
        result["genres"][genre] = {
            "held_out": summarise(held), "generated": summarise(gen), "n_held_out": len(held),
            "notes_per_bar_iqr": [float(np.percentile(npb, 25)), float(np.percentile(npb, 75))]}
        h, s = result["genres"][genre]["held_out"], result["genres"][genre]["generated"]
        iqr = result["genres"][genre]["notes_per_bar_iqr"]
        print(f"{genre:12s} H {s['pitch_entropy']:.2f} vs {h['pitch_entropy']:.2f} | "
              f"GS {s['groove_similarity']:.2f} vs {h['groove_similarity']:.2f} | "
              f"notes/bar {s['notes_per_bar']:.1f} (data IQR {iqr[0]:.1f}-{iqr[1]:.1f}) | "
              f"drums/bar {s['drum_onsets_per_bar']:.1f} vs {h['drum_onsets_per_bar']:.1f} | "
              f"range {s['pitch_range']:.0f} vs {h['pitch_range']:.0f}")
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
