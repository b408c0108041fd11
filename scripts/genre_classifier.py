"""An independent genre classifier: does a model's music sound like the genre it was asked for?

    python scripts/genre_classifier.py data/midi_genre --pieces 16 -o genre_result.json
    python scripts/genre_classifier.py data/midi_genre --model NEW.safetensors \
        --classifier docs/genre_classifier.json -o new_result.json

Trained on real songs, not on anything the model produced: multinomial logistic regression on
the symbolic features of vbgm_core/music/genre_features.py (drum pattern, onset density, pitch
range, chord vocabulary, syncopation, durations, instrument presence), standardised, L2,
class-balanced (rock has 8 times r&b's songs). Training excerpts: 16-bar windows of the `train`
songs, at most ``--per-song`` evenly spread windows per song so that long songs do not dominate.
Held-out excerpts (the same windows of the `valid` and `test` songs) give the classifier's own
accuracy, the ceiling for generated music. Then ``--pieces`` pieces per genre of free music
(C = 0) from ``--model``, piece k with seed k and the instrument set of the genre's k-th
held-out song (as scripts/model_card_stats.py), are classified: balanced accuracy, per-genre
recall, and the one-sided binomial p-value of the hits against chance (1 / n_genres).

The fitted classifier is written to ``--save`` (default docs/genre_classifier.json); pass it
back with ``--classifier`` so that later models are measured by the same classifier.
Generation is the slow part (5-10 s a piece with one thread on a busy 2-core machine, the
features of ~13,000 excerpts about 3 minutes): ``--pieces-file`` keeps the generated tokens
and resumes from them.
"""

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from vbgm_core.files import atomic_path
from vbgm_core.metrics.genre_features import (
    FEATURE_NAMES,
    bar_window,
    excerpt_features,
    window_starts,
)
from vbgm_core.music.instruments import groups_of
from vbgm_core.music.tokenizer import BAR, BEAT_T, TYPE
from vbgm_core.training.data import TokenDataset

DEFAULT_SAVE = Path(__file__).resolve().parents[1] / "docs" / "genre_classifier.json"
EXCERPT_BARS = 16


# ---------------------------------------------------------------- excerpts of the real songs

def song_excerpts(tokens, per_song):
    """Up to ``per_song`` evenly spread 16-bar windows of a song (none if it is shorter) whose
    bars are mostly played: an intro of silence says nothing about the genre."""
    n_bars = int((tokens[:, TYPE] == BAR).sum())
    out = []
    for start in window_starts(n_bars, EXCERPT_BARS, per_song):
        window = bar_window(tokens, start, EXCERPT_BARS)
        if played_bars(window) >= EXCERPT_BARS * 3 // 4:
            out.append(window)
    return out


def played_bars(tokens):
    """Bars with at least one onset (a bar token followed by a beat token)."""
    kind = tokens[:, TYPE]
    return int(((kind[:-1] == BAR) & (kind[1:] == BEAT_T)).sum())


def feature_table(ds, ids, per_song):
    """Features ``[n, F]`` and genre ids ``[n]`` of the songs' excerpts."""
    rows, labels = [], []
    for i in ids:
        for window in song_excerpts(ds.song(i), per_song):
            rows.append(excerpt_features(window))
            labels.append(ds.index[i]["genre_id"])
    return np.array(rows), np.array(labels)


def held_out_ids(ds):
    return ds.split_ids("valid") + ds.split_ids("test")


# ---------------------------------------------------------------- the classifier

class GenreClassifier:
    """Multinomial logistic regression on standardised features.

    A feature that is undefined for an excerpt (NaN: the pitch of an absent instrument) is
    replaced by its training mean, i.e. 0 after standardising: it then adds nothing, and the
    presence features carry the absence."""

    def __init__(self, genres, mean, std, weights, bias, info=None):
        self.genres = list(genres)
        self.mean, self.std = np.asarray(mean, float), np.asarray(std, float)
        self.weights, self.bias = np.asarray(weights, float), np.asarray(bias, float)
        self.info = info or {}

    @classmethod
    def fit(cls, x, y, genres, l2=1e-2, steps=400):
        """Fit by full-batch gradient descent with Nesterov momentum: the loss is convex, and a
        zero start with a fixed step count makes the fit deterministic. 400 steps converge (on
        midi_genre the loss is within 1e-9 of 1000 steps'). The penalty is l2/2 * |W|^2."""
        seen = ~np.isnan(x)
        count = np.maximum(seen.sum(0), 1)       # a feature never defined gets mean 0, std 1
        mean = np.where(seen, x, 0.0).sum(0) / count
        std = np.sqrt(np.where(seen, (x - mean) ** 2, 0.0).sum(0) / count)
        std = np.where(std > 1e-9, std, 1.0)     # a constant feature stays 0
        z = standardise(x, mean, std)
        k = len(genres)
        counts = np.bincount(y, minlength=k)
        # Class-balanced: every genre weighs the same in the loss, whatever its song count.
        w_sample = (len(y) / (k * np.maximum(counts, 1)))[y] / len(y)
        onehot = np.eye(k)[y]
        params = np.zeros((z.shape[1] + 1, k))
        velocity = np.zeros_like(params)
        za = np.hstack([z, np.ones((len(z), 1))])
        # Step 1 / L for the softmax loss: its Hessian is at most 1/2 * max eigenvalue of
        # the weighted Gram matrix.
        gram = (za * w_sample[:, None]).T @ za
        lr = 1.0 / (0.5 * np.linalg.eigvalsh(gram)[-1] + l2)
        decay = np.ones((z.shape[1] + 1, 1))
        decay[-1] = 0.0                          # the bias is not regularised
        for _ in range(steps):
            look = params + 0.9 * velocity
            p = softmax(za @ look)
            grad = za.T @ ((p - onehot) * w_sample[:, None]) + l2 * decay * look
            velocity = 0.9 * velocity - lr * grad
            params = params + velocity
        return cls(genres, mean, std, params[:-1].T, params[-1], {"l2": l2, "steps": steps})

    def probabilities(self, x):
        z = standardise(x, self.mean, self.std)
        return softmax(z @ self.weights.T + self.bias)

    def predict(self, x):
        return self.probabilities(x).argmax(1)

    def to_json(self, path, extra=None):
        data = {"format": "vbgm-genre-classifier-1", "features": list(FEATURE_NAMES),
                "genres": self.genres, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias.tolist(),
                "info": {**self.info, **(extra or {})}}
        with atomic_path(Path(path)) as tmp:
            tmp.write_text(json.dumps(data, indent=1))

    @classmethod
    def from_json(cls, path):
        data = json.loads(Path(path).read_text())
        if data.get("features") != list(FEATURE_NAMES):
            raise SystemExit(f"{path}: made for other features than genre_features.py computes; "
                             "train a new one (leave out --classifier)")
        return cls(data["genres"], data["mean"], data["std"], data["weights"], data["bias"],
                   data.get("info"))


def standardise(x, mean, std):
    z = (np.asarray(x, float) - mean) / std
    return np.where(np.isnan(z), 0.0, z)


def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---------------------------------------------------------------- scores

def scores(y, predicted, genres, test_chance=False):
    """Balanced accuracy, per-genre recall and the confusion matrix (rows true, columns
    predicted); with ``test_chance`` (for a set with the same count of every genre, where
    chance is 1 / n_genres) the one-sided binomial p-values of the hits against chance,
    overall and per genre."""
    k = len(genres)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y, predicted), 1)
    present = confusion.sum(1) > 0
    recall = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
    hits = int(np.trace(confusion))
    out = {"balanced_accuracy": float(recall[present].mean()), "accuracy": hits / len(y),
           "n": int(len(y)), "chance": 1 / k,
           "recall": {g: float(recall[i]) for i, g in enumerate(genres) if present[i]},
           "confusion": confusion.tolist()}
    if test_chance:
        out["p_value_vs_chance"] = binomial_tail(hits, len(y), 1 / k)
        out["recall_p_value"] = {g: binomial_tail(int(confusion[i, i]), int(confusion[i].sum()), 1 / k)
                                 for i, g in enumerate(genres) if present[i]}
    return out


def binomial_tail(hits, n, p):
    """P(X >= hits) for X ~ Binomial(n, p), one-sided."""
    def log_term(j):    # log of C(n, j) p^j (1-p)^(n-j), in logs so that large n do not overflow
        return (math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
                + j * math.log(p) + (n - j) * math.log1p(-p))
    return float(min(1.0, sum(math.exp(log_term(j)) for j in range(max(hits, 0), n + 1))))


# ---------------------------------------------------------------- generated pieces

def generate_pieces(ds, model_path, n_pieces, n_bars, sampling, cache=None):
    """Tokens of ``n_pieces`` free pieces per genre: {genre id: [tokens of piece k]}.

    With ``cache`` (an .npz), pieces already there are loaded and every new one is saved at
    once, so that an interrupted run resumes; the cache remembers the model file's hash and
    the settings, and refuses to mix pieces of different ones."""
    import torch

    from vbgm_core.music.sampler import ControlledSampler, Targets
    from vbgm_core.scorer import Scorer
    torch.set_num_threads(1)    # the machine is shared; one thread wastes less on contention
    scorer = Scorer.from_pretrained(model_path)
    key = {"model_sha256": file_sha256(scorer_path(model_path)), "bars": n_bars,
           "sampling": vars(sampling), "control": 0.0}
    done = load_cache(cache, key) if cache else {}
    genres = scorer.info["genres"]
    held = held_out_ids(ds)
    # Pieces in the order k, then genre: a run stopped early still has every genre.
    for k in range(n_pieces):
        for g, genre in enumerate(genres):
            name = f"{g}_{k}"
            if name in done:
                continue
            songs = [i for i in held if ds.index[i]["genre"] == genre]
            groups = groups_of(ds.index[songs[k % len(songs)]]["instruments"])
            done[name] = ControlledSampler(scorer.model, g, groups, 0.0, k, sampling).generate(
                Targets(n_bars))
            print(f"generated {genre} piece {k} ({', '.join(groups)})", flush=True)
            if cache:
                with atomic_path(Path(cache)) as tmp:
                    np.savez_compressed(tmp, key=json.dumps(key), **done)
    return genres, {g: [done[f"{g}_{k}"] for k in range(n_pieces)] for g in range(len(genres))}


def scorer_path(model_path):
    if model_path:
        return Path(model_path)
    import vbgm_core
    return Path(vbgm_core.__file__).parent / "assets" / "model.safetensors"


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_cache(cache, key):
    if not Path(cache).is_file():
        return {}
    with np.load(cache) as f:
        stored = json.loads(str(f["key"]))
        if stored != key:
            raise SystemExit(f"{cache}: pieces of another model or settings ({stored}); "
                             "use another --pieces-file")
        return {name: f[name] for name in f.files if name != "key"}


# ---------------------------------------------------------------- report

def print_table(genres, held, generated):
    print(f"{'genre':12s} {'held-out recall':>22s}" + (f" {'generated recall':>20s} {'p':>7s}" if generated else ""))
    for i, g in enumerate(genres):
        n = sum(held["confusion"][i])
        line = f"{g:12s} {held['recall'][g]:8.2f} ({n:4d} excerpts)"
        if generated:
            hits, m = generated["confusion"][i][i], sum(generated["confusion"][i])
            line += f" {generated['recall'][g]:9.2f} ({hits:2d}/{m:2d})  {generated['recall_p_value'][g]:7.3f}"
        print(line)
    line = f"{'balanced':12s} {held['balanced_accuracy']:8.2f}                 "
    if generated:
        line += f" {generated['balanced_accuracy']:9.2f}          {generated['p_value_vs_chance']:7.3f}"
    print(line + f"   (chance {held['chance']:.2f})")
    for name, s in (("held-out", held), ("generated", generated)):
        if s:
            print(f"confusion, {name} (rows: true genre; columns: predicted, in the order above)")
            for g, row in zip(genres, s["confusion"]):
                print(f"  {g:12s} " + " ".join(f"{v:5d}" for v in row))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="a prepared dataset (vbgm prepare)")
    p.add_argument("--model", default=None, help="model to generate with (default: bundled)")
    p.add_argument("--pieces", type=int, default=16, help="generated pieces per genre (0: none)")
    p.add_argument("--per-song", type=int, default=4, help="16-bar excerpts per song at most")
    p.add_argument("--l2", type=float, default=1e-2, help="L2 penalty (l2/2) |W|^2")
    p.add_argument("--classifier", default=None, help="reuse this fitted classifier (JSON)")
    p.add_argument("--save", default=str(DEFAULT_SAVE), help="where a newly fitted one goes")
    p.add_argument("--pieces-file", default=None, help="keep/resume generated tokens (.npz)")
    p.add_argument("--sampling", nargs="+", default=None, metavar="ATTR.SETTING=VALUE",
                   help="sampling overrides, as `vbgm score --sampling`")
    p.add_argument("-o", "--output", default=None, help="results (JSON)")
    args = p.parse_args()
    ds = TokenDataset(args.data)
    result = {"data": str(args.data), "excerpt_bars": EXCERPT_BARS, "per_song": args.per_song}
    if args.classifier:
        clf = GenreClassifier.from_json(args.classifier)
        if clf.genres != ds.genres:
            raise SystemExit(f"{args.classifier} knows genres {clf.genres}, the data {ds.genres}")
        result["classifier"] = str(args.classifier)
    else:
        x, y = feature_table(ds, ds.split_ids("train"), args.per_song)
        clf = GenreClassifier.fit(x, y, ds.genres, l2=args.l2)
        result["train"] = scores(y, clf.predict(x), ds.genres)
    hx, hy = feature_table(ds, held_out_ids(ds), args.per_song)
    result["held_out"] = scores(hy, clf.predict(hx), ds.genres)
    if not args.classifier:
        # The classifier carries its own ceiling: its balanced accuracy on real held-out music.
        clf.info.update({"trained_on": f"{args.data}: {len(y)} excerpts of "
                                       f"{len(ds.split_ids('train'))} train songs",
                         "excerpt_bars": EXCERPT_BARS, "per_song": args.per_song,
                         "held_out_balanced_accuracy": result["held_out"]["balanced_accuracy"],
                         "held_out_recall": result["held_out"]["recall"]})
        clf.to_json(args.save)
        result["classifier"] = args.save
        print(f"fitted on {len(y)} training excerpts (training balanced accuracy "
              f"{result['train']['balanced_accuracy']:.2f}); saved to {args.save}")
    generated = None
    if args.pieces > 0:
        from vbgm_core.music.sampling import Sampling
        sampling = Sampling.parse(args.sampling)
        genres, pieces = generate_pieces(ds, args.model, args.pieces, EXCERPT_BARS, sampling,
                                         args.pieces_file)
        if genres != clf.genres:
            raise SystemExit(f"the model knows genres {genres}, the classifier {clf.genres}")
        gx = np.array([excerpt_features(t) for g in range(len(genres)) for t in pieces[g]])
        gy = np.repeat(np.arange(len(genres)), args.pieces)
        generated = scores(gy, clf.predict(gx), genres, test_chance=True)
        result["generated"] = {"model": str(scorer_path(args.model)), "pieces_per_genre": args.pieces,
                               "control": 0.0, "sampling": vars(sampling), **generated}
    print_table(ds.genres, result["held_out"], generated)
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            tmp.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
