"""Music statistics of a model's free generations against held-out songs, per genre.

    python scripts/model_card_stats.py data/midi_genre --pieces 16 --bars 16 -o docs/model_stats.json

Held-out songs: the dataset's `valid` and `test` songs of each genre (neither is trained on),
their first ``--bars`` bars. Generated: ``--pieces`` pieces per genre without video control
(C = 0), piece k with seed k and the instrument set of the genre's k-th held-out song, so both
sides have the same mix of instrument sets. Reports pitch-class entropy, grooving similarity,
notes per bar, drum onsets per bar and pitch range, with the standard error of the generated
means, and checks the model card's criteria: entropy and grooving within 25% of the held-out
values, notes per bar inside the held-out interquartile range, and genres measurably different:
a permutation test of each statistic's between-genre spread over the generated pieces, and the
rank correlation of the genres' generated means with their held-out means (same direction?).
Also how much the model uses its genre input at all: the validation loss of the first 512
tokens of the `valid` songs with their true genre and with each wrong one.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vbgm_core.files import atomic_path
from vbgm_core.metrics.grid import grid_notes
from vbgm_core.metrics.musdr import grooving_similarity, pitch_class_entropy
from vbgm_core.model.cmt import masked_losses
from vbgm_core.music.instruments import groups_of
from vbgm_core.music.sampler import ControlledSampler, Sampling, Targets
from vbgm_core.music.tokenizer import BAR, TYPE, CPTokenizer
from vbgm_core.scorer import Scorer
from vbgm_core.training.data import TokenDataset
from vbgm_core.training.train import CropSampler, split_rows

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


def standard_errors(rows):
    return {k: float(np.nanstd([r[k] for r in rows], ddof=1) / np.sqrt(len(rows))) for k in rows[0]}


def genre_spread(groups):
    """Between-genre sum of squares of the group means (the one-way ANOVA numerator), summed
    over the columns of the ``[n, K]`` groups."""
    everything = np.concatenate(groups)
    return sum(len(g) * ((g.mean(0) - everything.mean(0)) ** 2).sum() for g in groups)


def permutation_p(groups, n_perm=10_000, seed=0):
    """P-value of "the genre labels do not matter": how often shuffled labels spread the genre
    means at least as far apart as the real ones. Groups are ``[n, K]`` (K statistics, each
    standardised first so that they weigh the same) or ``[n]``."""
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, float).reshape(len(g), -1) for g in groups]
    values, sizes = np.concatenate(groups), [len(g) for g in groups]
    values = (values - values.mean(0)) / np.maximum(values.std(0), 1e-12)
    cuts = np.cumsum(sizes)[:-1]
    observed = genre_spread(np.split(values, cuts))
    hits = sum(genre_spread(np.split(values[rng.permutation(len(values))], cuts)) >= observed
               for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


STATS = ("notes_per_bar", "drum_onsets_per_bar", "pitch_range", "pitch_entropy")


def genre_differences(result, pieces):
    """Per statistic, and for the four together: permutation p-value over the generated pieces;
    per statistic, the rank correlation of the generated genre means with the held-out ones."""
    genres = list(result["genres"])
    out = {}
    for key in STATS:
        groups = [np.array([r[key] for r in pieces[g]]) for g in genres]
        out[key] = {"permutation_p": permutation_p(groups), "spearman_vs_held_out": spearman(
            [result["genres"][g]["generated"][key] for g in genres],
            [result["genres"][g]["held_out"][key] for g in genres])}
    out["all_four"] = {"permutation_p": permutation_p(
        [np.array([[r[k] for k in STATS] for r in pieces[g]]) for g in genres])}
    return out


def genre_use(model, ds, n_batches=12):
    """How much the model uses its genre input, on song-start crops of the `valid` songs:
    the validation loss (sum of the attributes' mean cross entropies) with the true genre and
    with every wrong genre in turn, and how often the genre under which a crop is most likely
    is its true genre (the model as a genre classifier without priors: a random guess is right
    1 / n_genres of the time)."""
    _, valid = split_rows(ds, 0.05)
    crops = CropSampler(ds, valid, 512, start_crop_prob=1.0)
    generator = torch.Generator().manual_seed(0)
    n_genres = len(ds.genres)
    loss = np.zeros(n_genres)               # index: shift of the genre labels (0 = true)
    right, crops_seen = 0, 0
    with torch.no_grad():
        for _ in range(n_batches):
            batch = crops.batch(8, generator)
            crop_nll = np.zeros((len(batch["genre"]), n_genres))   # [crop, shift]
            for shift in range(n_genres):
                wrong = {**batch, "genre": (batch["genre"] + shift) % n_genres}
                logits = model(**wrong)
                losses, _ = masked_losses(logits, wrong["tokens"])
                loss[shift] += sum(v.item() for v in losses.values()) / n_batches
                for i in range(len(crop_nll)):
                    per, n = masked_losses({a: v[i:i + 1] for a, v in logits.items()},
                                           wrong["tokens"][i:i + 1])
                    crop_nll[i, shift] = sum((per[a] * n[a]).item() for a in per)
            right += int((crop_nll.argmin(1) == 0).sum())
            crops_seen += len(crop_nll)
    return {"true_genre": float(loss[0]), "wrong_genre": float(loss[1:].mean()),
            "cost_of_a_wrong_genre": float(loss[1:].mean() - loss[0]),
            "genre_accuracy": right / crops_seen, "chance": 1 / n_genres}


def checks(h, s, iqr):
    """The model card's criteria for one genre: {name: passed}."""
    def within(key):
        return abs(s[key] - h[key]) <= 0.25 * h[key]
    return {"pitch_entropy_within_25pct": within("pitch_entropy"),
            "groove_similarity_within_25pct": within("groove_similarity"),
            "notes_per_bar_in_iqr": iqr[0] <= s["notes_per_bar"] <= iqr[1]}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--model", default=None)
    p.add_argument("--pieces", type=int, default=16)
    p.add_argument("--bars", type=int, default=16)
    p.add_argument("--songs", type=int, default=None, help="held-out songs per genre at most")
    p.add_argument("--sampling", nargs="+", default=None, metavar="ATTR.SETTING=VALUE",
                   help="sampling overrides, as `vbgm score --sampling`")
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args()
    ds = TokenDataset(args.data)
    scorer = Scorer.from_pretrained(args.model)
    model, extra = scorer.model, scorer.info
    sampling = Sampling.parse(args.sampling)
    result = {"model": extra, "bars": args.bars, "pieces": args.pieces,
              "sampling": vars(sampling), "genres": {}}
    held_ids = ds.split_ids("valid") + ds.split_ids("test")
    pieces = {}
    for g, genre in enumerate(extra["genres"]):
        songs = [i for i in held_ids if ds.index[i]["genre"] == genre][:args.songs]
        held = [piece_stats(first_bars(ds.song(i), args.bars), args.bars) for i in songs]
        gen = []
        for k in range(args.pieces):
            groups = groups_of(ds.index[songs[k % len(songs)]]["instruments"])
            tokens = ControlledSampler(model, g, groups, 0.0, k, sampling).generate(
                Targets(args.bars))
            gen.append(piece_stats(tokens, args.bars))
        pieces[genre] = gen
        npb = [r["notes_per_bar"] for r in held]
        iqr = [float(np.percentile(npb, 25)), float(np.percentile(npb, 75))]
        h, s = summarise(held), summarise(gen)
        result["genres"][genre] = {"held_out": h, "generated": s,
                                   "generated_standard_error": standard_errors(gen),
                                   "n_held_out": len(held), "notes_per_bar_iqr": iqr,
                                   "checks": checks(h, s, iqr)}
        se = result["genres"][genre]["generated_standard_error"]
        print(f"{genre:12s} H {s['pitch_entropy']:.2f} vs {h['pitch_entropy']:.2f} | "
              f"GS {s['groove_similarity']:.2f} vs {h['groove_similarity']:.2f} | "
              f"notes/bar {s['notes_per_bar']:.1f}±{se['notes_per_bar']:.1f} "
              f"(held-out IQR {iqr[0]:.1f}-{iqr[1]:.1f}, {len(held)} songs) | "
              f"drums/bar {s['drum_onsets_per_bar']:.1f} vs {h['drum_onsets_per_bar']:.1f} | "
              f"range {s['pitch_range']:.0f} vs {h['pitch_range']:.0f}", flush=True)
    for name in next(iter(result["genres"].values()))["checks"]:
        passed = [g for g, r in result["genres"].items() if r["checks"][name]]
        print(f"{name}: {len(passed)}/{len(result['genres'])} genres")
    result["genre_differences"] = genre_differences(result, pieces)
    for key, d in result["genre_differences"].items():
        rank = (f", rank correlation with held-out genre means {d['spearman_vs_held_out']:+.1f}"
                if "spearman_vs_held_out" in d else "")
        print(f"genres differ in {key}: permutation p = {d['permutation_p']:.4f}{rank}")
    result["genre_use"] = genre_use(model, ds)
    print("validation loss of song starts with the true genre {true_genre:.4f}, with a wrong "
          "one {wrong_genre:.4f} (+{cost_of_a_wrong_genre:.4f}); the genre most likely under the "
          "model is the true one for {genre_accuracy:.0%} of them (chance {chance:.0%})".format(**result["genre_use"]))
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
