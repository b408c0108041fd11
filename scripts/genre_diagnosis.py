"""Why does the generated music carry little genre? (issue 24; results in docs/GENRE.md)

    python scripts/genre_diagnosis.py data/midi_genre --crops 4 --pieces 5 --guidance 0 1 2 \
        -o genre_diagnosis.json

1. **Likelihood** (read-only, held-out songs of ``--split``): every song's crops of
   ``--crop-len`` tokens (the first at the song's start, the others evenly spread; no
   randomness) are scored by the model under each of the genres, as the validation loss is
   (per-attribute cross entropy over the tokens whose type uses the attribute). Per song and
   genre: the per-attribute mean losses and the total negative log-likelihood. Reported: how
   much lower the right genre's loss is than the wrong ones' (validation-style loss = sum of
   the 7 attribute means, and per attribute), per true genre; the model as a classifier (the
   genre under which the song's crops are most likely: balanced accuracy, recall, confusion);
   and where in a crop the genre helps (the gap by token position: does the context make the
   genre token redundant?).
2. **Guidance**: ``--pieces`` free pieces (C = 0) per genre and guidance weight W
   (``genre.guidance=W``, the sampler's contrastive genre guidance), made and classified as
   scripts/genre_classifier.py does (piece k: seed k, the instrument set of the genre's k-th
   held-out song; classifier docs/genre_classifier.json). Reported: balanced accuracy,
   per-genre recall, and a few harmony features of the pieces.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from genre_classifier import (
    EXCERPT_BARS,
    GenreClassifier,
    generate_pieces,
    scores,
)

from vbgm_core.files import atomic_path
from vbgm_core.metrics.genre_features import FEATURE_NAMES, excerpt_features
from vbgm_core.model.checkpoint import load_model
from vbgm_core.model.config import ATTRIBUTES, TYPE_ATTRIBUTES
from vbgm_core.music.tokenizer import token_positions
from vbgm_core.training.data import TokenDataset
from vbgm_core.training.train import instrument_bits

BUNDLED = ROOT / "vbgm_core" / "assets" / "model.safetensors"
POSITION_EDGES = (0, 32, 128, 512, 10 ** 9)     # token-position buckets inside a crop


def crop_starts(length, crop_len, n):
    """The song's start, then evenly spread crops (fewer for a short song)."""
    if length <= crop_len:
        return [0]
    return sorted({int(np.rint(s)) for s in np.linspace(0, length - crop_len, n)})


def token_nll(logits, tokens):
    """Per-token, per-attribute negative log-likelihood ``[B, L, 7]`` and the mask of the
    positions that count (the target's type uses the attribute), as masked_losses."""
    types = tokens[..., 0]
    nll, mask = [], []
    for i, a in enumerate(ATTRIBUTES):
        uses = torch.zeros_like(types, dtype=torch.bool)
        for t, attrs in TYPE_ATTRIBUTES.items():
            if a in attrs:
                uses |= types == t
        target = tokens[..., i].masked_fill(~uses, 0)
        ce = F.cross_entropy(logits[a].float().flatten(0, 1), target.flatten(),
                             reduction="none").view(types.shape)
        nll.append(ce * uses)
        mask.append(uses)
    return torch.stack(nll, -1), torch.stack(mask, -1)


@torch.no_grad()
def likelihoods(model, ds, songs, crop_len, n_crops):
    """Per song: ``sums [G, 7]``, ``counts [7]`` (summed over crops), ``pos_sums [G, P]`` and
    ``pos_counts [P]`` (total NLL by token-position bucket) under each genre G."""
    G = model.cfg.n_genres
    out = []
    for i, row in enumerate(songs):
        tokens = ds.song(row)
        beat, timing = token_positions(tokens)
        starts = crop_starts(len(tokens), crop_len, n_crops)
        n = len(starts)
        L = min(crop_len, len(tokens))
        tok = torch.zeros(n, L, 7, dtype=torch.long)
        bt = torch.zeros(n, L, dtype=torch.long)
        tm = torch.zeros(n, L, dtype=torch.long)
        for c, s in enumerate(starts):
            tok[c] = torch.from_numpy(tokens[s:s + L])
            bt[c] = torch.from_numpy(beat[s:s + L])
            tm[c] = torch.from_numpy(timing[s:s + L])
        # Every crop under every genre: rows (genre, crop).
        genre = torch.arange(G).repeat_interleave(n)
        inst = torch.tensor(instrument_bits(ds.index[row]["instruments"])).expand(G * n, -1)
        logits = model(tok.repeat(G, 1, 1), bt.repeat(G, 1), tm.repeat(G, 1), genre, inst)
        nll, mask = token_nll(logits, tok.repeat(G, 1, 1))
        nll = nll.view(G, n, L, 7)
        total = nll.sum(-1)                                            # [G, n, L]
        pos = torch.arange(L)
        bucket = torch.bucketize(pos, torch.tensor(POSITION_EDGES[1:-1]), right=True)
        P = len(POSITION_EDGES) - 1
        any_mask = mask[:n].any(-1)                                    # [n, L]
        pos_sums = torch.zeros(G, P).index_add_(1, bucket, total.sum(1))
        pos_counts = torch.zeros(P).index_add_(0, bucket, any_mask.sum(0).float())
        start_total = total[:, 0].sum(-1)                              # crop at the song start
        out.append({"song": row, "genre_id": ds.index[row]["genre_id"], "n_crops": n,
                    "sums": nll.sum((1, 2)).numpy(), "counts": mask[:n].sum((0, 1)).numpy(),
                    "pos_sums": pos_sums.numpy(), "pos_counts": pos_counts.numpy(),
                    "start_total": start_total.numpy(),
                    "start_tokens": int(any_mask[0].sum())})
        if (i + 1) % 25 == 0:
            print(f"  scored {i + 1}/{len(songs)} songs", flush=True)
    return out


def analyse_likelihood(rows, genres):
    G = len(genres)
    attr_mean = np.array([r["sums"] / np.maximum(r["counts"], 1) for r in rows])   # [S, G, 7]
    loss = attr_mean.sum(-1)                                                        # [S, G]
    nll = np.array([r["sums"].sum(-1) for r in rows])                               # [S, G]
    y = np.array([r["genre_id"] for r in rows])
    S = len(rows)
    right = loss[np.arange(S), y]
    wrong = (loss.sum(1) - right) / (G - 1)
    gap = wrong - right                               # > 0: the right genre is more likely
    attr_right = attr_mean[np.arange(S), y]
    attr_wrong = (attr_mean.sum(1) - attr_right) / (G - 1)
    attr_gap = attr_wrong - attr_right                                             # [S, 7]
    tokens = np.array([r["counts"].max() for r in rows])      # type is counted at every token
    nll_gap = (nll.sum(1) - G * nll[np.arange(S), y]) / (G - 1) / tokens  # nats per token
    pred = nll.argmin(1)
    clf = scores(y, pred, genres)
    # Position buckets: per-token total NLL gap.
    pos_sums = np.array([r["pos_sums"] for r in rows])                              # [S, G, P]
    pos_counts = np.array([r["pos_counts"] for r in rows]).sum(0)                   # [P]
    pos_right = pos_sums[np.arange(S), y].sum(0)
    pos_wrong = (pos_sums.sum(1).sum(0) - pos_right) / (G - 1)
    pos_gap = (pos_wrong - pos_right) / np.maximum(pos_counts, 1)
    start = np.array([r["start_total"] for r in rows])
    start_tok = np.array([r["start_tokens"] for r in rows])
    start_gap = ((start.sum(1) - G * start[np.arange(S), y]) / (G - 1) / start_tok)
    start_pred = start.argmin(1)
    out = {
        "songs": S, "loss_right": float(right.mean()), "loss_wrong": float(wrong.mean()),
        "gap_mean": float(gap.mean()), "gap_sem": float(gap.std(ddof=1) / np.sqrt(S)),
        "gap_positive_share": float((gap > 0).mean()),
        "nll_gap_per_token": float(nll_gap.mean()),
        "attribute_gap": {a: float(attr_gap[:, i].mean()) for i, a in enumerate(ATTRIBUTES)},
        "attribute_gap_sem": {a: float(attr_gap[:, i].std(ddof=1) / np.sqrt(S))
                              for i, a in enumerate(ATTRIBUTES)},
        "attribute_loss_right": {a: float(attr_right[:, i].mean()) for i, a in enumerate(ATTRIBUTES)},
        "classifier": clf,
        "start_crop": {"nll_gap_per_token": float(start_gap.mean()),
                       "classifier": scores(y, start_pred, genres)},
        "position_gap": {f"{lo}-{hi if hi < 10 ** 9 else 'end'}": float(g) for lo, hi, g in
                         zip(POSITION_EDGES[:-1], POSITION_EDGES[1:], pos_gap) if pos_counts[
                             POSITION_EDGES.index(lo)] > 0},
        "loss_matrix": [[float(loss[y == t, g].mean()) for g in range(G)] for t in range(G)],
        "per_genre": {},
    }
    for t, name in enumerate(genres):
        sel = y == t
        if not sel.any():
            continue
        out["per_genre"][name] = {
            "songs": int(sel.sum()), "gap": float(gap[sel].mean()),
            "gap_sem": float(gap[sel].std(ddof=1) / np.sqrt(sel.sum())) if sel.sum() > 1 else None,
            "nll_gap_per_token": float(nll_gap[sel].mean()),
            "recall": clf["recall"].get(name),
            "attribute_gap": {a: float(attr_gap[sel, i].mean()) for i, a in enumerate(ATTRIBUTES)},
        }
    return out


def print_likelihood(res, genres):
    print(f"\n== likelihood, {res['songs']} songs: validation-style loss right genre "
          f"{res['loss_right']:.4f}, wrong genres {res['loss_wrong']:.4f}: gap "
          f"{res['gap_mean']:+.4f} ± {res['gap_sem']:.4f} (right lower for "
          f"{100 * res['gap_positive_share']:.0f}% of songs); joint NLL gap "
          f"{res['nll_gap_per_token']:+.4f} nats/token")
    print("  gap per attribute (wrong - right, nats per token using it): " + ", ".join(
        f"{a} {v:+.4f}±{res['attribute_gap_sem'][a]:.4f}" for a, v in res["attribute_gap"].items()))
    c = res["classifier"]
    print(f"  as a classifier (most likely genre): balanced accuracy {c['balanced_accuracy']:.2f}"
          f" (chance {c['chance']:.2f}), accuracy {c['accuracy']:.2f}; recall " + ", ".join(
              f"{g} {v:.2f}" for g, v in c["recall"].items()))
    s = res["start_crop"]
    print(f"  song-start crops only: gap {s['nll_gap_per_token']:+.4f} nats/token, balanced "
          f"accuracy {s['classifier']['balanced_accuracy']:.2f}")
    print("  gap by token position in the crop (nats/token): " + ", ".join(
        f"{k}: {v:+.4f}" for k, v in res["position_gap"].items()))
    print("  per genre: " + "; ".join(
        f"{g} ({v['songs']}) gap {v['gap']:+.4f}, recall {v['recall']:.2f}"
        for g, v in res["per_genre"].items()))
    print("  confusion (rows true, columns most likely): " + " | ".join(
        " ".join(str(x) for x in row) for row in c["confusion"]))


HARMONY = ("chord_single", "chord_major", "pc_entropy", "onsets_per_bar_bass", "present_drums")


def guidance(ds, model_path, clf, weights, n_pieces, cache_dir):
    from vbgm_core.music.sampling import Sampling
    out = {}
    idx = [FEATURE_NAMES.index(n) for n in HARMONY]
    for w in weights:
        sampling = Sampling.parse([f"genre.guidance={w}"])
        cache = Path(cache_dir) / f"guidance_{w}.npz" if cache_dir else None
        t = time.perf_counter()
        genres, pieces = generate_pieces(ds, model_path, n_pieces, EXCERPT_BARS, sampling, cache)
        x = np.array([excerpt_features(p) for g in range(len(genres)) for p in pieces[g]])
        y = np.repeat(np.arange(len(genres)), n_pieces)
        res = scores(y, clf.predict(x), genres, test_chance=True)
        res["features"] = {n: float(np.nanmean(x[:, i])) for n, i in zip(HARMONY, idx)}
        res["seconds"] = time.perf_counter() - t
        out[str(w)] = res
        print(f"\n== guidance W={w}: balanced accuracy {res['balanced_accuracy']:.2f} "
              f"(p {res['p_value_vs_chance']:.3f}); recall " + ", ".join(
                  f"{g} {v:.2f}" for g, v in res["recall"].items()) + "; " + ", ".join(
                  f"{n} {v:.2f}" for n, v in res["features"].items()), flush=True)
        print("  confusion: " + " | ".join(" ".join(str(v) for v in r) for r in res["confusion"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default=str(BUNDLED))
    ap.add_argument("--split", default="test")
    ap.add_argument("--crop-len", type=int, default=512)
    ap.add_argument("--crops", type=int, default=4, help="crops per song")
    ap.add_argument("--guidance", nargs="*", type=float, default=[0.0, 1.0, 2.0])
    ap.add_argument("--pieces", type=int, default=5, help="pieces per genre and W (0: none)")
    ap.add_argument("--classifier", default=str(ROOT / "docs" / "genre_classifier.json"))
    ap.add_argument("--cache-dir", default=None, help="keep generated pieces here (.npz)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = TokenDataset(args.data)
    model, extra = load_model(args.model)
    model = model.float().eval()
    if extra.get("genres") != ds.genres:
        raise SystemExit(f"the model knows genres {extra.get('genres')}, the data {ds.genres}")
    songs = ds.split_ids(args.split)
    t = time.perf_counter()
    rows = likelihoods(model, ds, songs, args.crop_len, args.crops)
    result = {"model": args.model, "split": args.split, "crop_len": args.crop_len,
              "crops": args.crops, "likelihood": analyse_likelihood(rows, ds.genres)}
    result["likelihood"]["seconds"] = time.perf_counter() - t
    print_likelihood(result["likelihood"], ds.genres)
    if args.pieces and args.guidance:
        clf = GenreClassifier.from_json(args.classifier)
        result["guidance"] = guidance(ds, args.model, clf, args.guidance, args.pieces,
                                      args.cache_dir)
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
