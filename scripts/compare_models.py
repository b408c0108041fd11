"""The ratchet (issue 24): measure two models the same way, in one run, and say whether the
candidate may replace the base (the bundled model).

    python scripts/compare_models.py vbgm_core/assets/model.safetensors CANDIDATE.safetensors \
        --data data/midi_genre [--clips V.mp4 ...] [--seeds 0 1] [--json OUT.json]

Both models are measured as they ship: weights rounded to fp16 (scripts/export_model.py writes
fp16; a no-op for the bundled model), and a candidate without music statistics gets the
dataset's, as export_model.py adds them. The base is used as its file stands.

1. **Loss** on the held-out songs of each ``--splits`` split (``test`` decides; ``valid`` for
   continuity): ``--crops`` crops of ``--crop-len`` tokens per song, drawn with the training
   code's ``CropSampler`` (a random start, the genre and instrument-set start tokens as training
   prepends them) from a generator seeded with 0 per split, so the crops depend on the dataset
   alone; both models see exactly the same crops. The loss is training's
   (``train.loss_sums`` / ``mean_losses``): the sum of the seven attribute means, each a mean
   over all positions of the split's crops that use it. Its noise: the standard error of the
   per-song differences. Also the training loop's own validation figure (8 batches of 8 crops
   of the valid split, seed 0: ``train.validation_loss``), the number metrics.jsonl logs.
2. **Generated pieces**, the product's path: each clip analysed once (``Scorer.analyze``, its
   first ``--end`` seconds), then for each model, genre and seed ``Scorer.generate`` at
   C = ``--control`` with default options and ``Scorer.report`` (control error). Per piece:
   GS (grooving similarity), H1/H4 (pitch-class entropy over 1- and 4-bar windows),
   out-of-scale share, drum and pitched repetition (6-bar windows), notes per bar; the piece's
   MIDI, encoded back to tokens, is classified by the independent genre classifier
   (scripts/genre_classifier.py, ``--classifier``): balanced accuracy and per-genre recall.
   The same figures of the test songs' middle 6 bars (decoded from the dataset's tokens) are
   the reference for the style rows.
3. **Verdict**: "candidate wins" if its test loss is lower and no other row is worse beyond
   its tolerance, else "keep the bundled model" with the failing rows. A default setting is
   judged the same way, the bundled model against itself with ``--candidate-sampling`` (e.g.
   ``genre.guidance=1``): the test loss ties ("same weights") and the other rows decide. Tolerances:
   - valid loss: 2 standard errors of the per-song differences;
   - GS, H1, H4, drum and pitched repetition, notes per bar: the distance of the mean to the
     test songs' mean may grow by at most 2 standard errors of the per-piece differences
     (pieces are paired: same clip, genre and seed);
   - out-of-scale share (lower is better): 2 standard errors of the per-piece differences;
   - control error (lower is better): a fixed band, density +0.01, strength +0.001,
     time +0.001, or 2 standard errors of the per-piece differences where those are larger
     (a strength error of a few pieces varies by more than 0.001);
   - genre balanced accuracy: not lower by more than 0.05, a fixed band (tighter than its
     noise with 50 pieces a model: the row shows 2 standard errors); per-genre recall: not
     lower by more than 2 standard errors of a difference of two proportions (pooled).
   The training loop's validation figure is shown for continuity only.
"""

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from genre_classifier import GenreClassifier, scores

from vbgm_core.errors import InputError
from vbgm_core.files import atomic_path
from vbgm_core.metrics.genre_features import excerpt_features
from vbgm_core.metrics.grid import grid_notes
from vbgm_core.metrics.musdr import grooving_similarity, pitch_class_entropy
from vbgm_core.metrics.quality import out_of_scale_share
from vbgm_core.metrics.repetition import middle_window, repetition
from vbgm_core.model.checkpoint import load_model, save_model
from vbgm_core.model.config import ATTRIBUTES, TrainConfig
from vbgm_core.music.tokenizer import CPTokenizer
from vbgm_core.options import ScoreOptions
from vbgm_core.scorer import Scorer
from vbgm_core.training.data import TokenDataset
from vbgm_core.training.train import (
    CropSampler,
    loss_sums,
    mean_losses,
    split_rows,
    validation_loss,
)

SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
CLIPS = ("bikes.mp4", "chaplin.mp4", "talking.mp4", "bottle-detection.mp4", "car-detection.mp4")
CLASSIFIER = ROOT / "docs" / "genre_classifier.json"
WINDOW_BARS = 6
MODELS = ("base", "candidate")
ISSUE_BAR = (5.5, 5.3)      # issue 24: test loss <= 5.5, target 5.3

# Style figures of a piece: (key, label). Their rows ask "no farther from the test songs".
STYLE = (("grooving", "GS (grooving similarity)"), ("h1", "H1 (pitch-class entropy, 1 bar)"),
         ("h4", "H4 (pitch-class entropy, 4 bars)"),
         ("drum_repetition", "drum repetition"), ("pitched_repetition", "pitched repetition"),
         ("notes_per_bar", "notes per bar"))
CONTROL_BANDS = {"density": 0.01, "strength": 0.001, "time": 0.001}
GENRE_ACCURACY_BAND = 0.05


# ---------------------------------------------------------------- the models

def load_scorer(path, dataset, candidate, workdir):
    """A Scorer of the model as it ships: fp16 weights (loaded back into float32, as the
    product loads the bundled file), and for the candidate the dataset's music statistics if
    its weights carry none (export_model.py adds them)."""
    model, extra = load_model(path)
    if candidate and "music_stats" not in extra:
        extra = {**extra, "music_stats": dataset.music_stats()}
    shipped = Path(workdir) / f"{'candidate' if candidate else 'base'}.safetensors"
    save_model(shipped, model.half(), extra)
    scorer = Scorer.from_pretrained(shipped, background=False)
    scorer.model.eval()
    return scorer


# ---------------------------------------------------------------- 1. loss

def fixed_crops(dataset, rows, per_song, crop_len, seed=0):
    """Per song of ``rows``: a batch of ``per_song`` crops (training's CropSampler, random
    starts), from one generator seeded with ``seed``: the same crops for every model."""
    generator = torch.Generator().manual_seed(seed)
    return [(row, CropSampler(dataset, [row], crop_len, 0.0).batch(per_song, generator))
            for row in rows]


def split_loss(model, crops, autocast):
    """The loss over all crops (training's reduction) and each song's own loss."""
    sums = {a: 0.0 for a in ATTRIBUTES}
    counts = {a: 0 for a in ATTRIBUTES}
    per_song = []
    for _, batch in crops:
        s, c = loss_sums(model, [batch], torch.device("cpu"), autocast)
        per_song.append(mean_losses(s, c)["loss"])
        for a in ATTRIBUTES:
            sums[a] += s[a]
            counts[a] += c[a]
    return {**mean_losses(sums, counts), "per_song": per_song}


def training_validation(model, dataset, autocast):
    """The training loop's validation loss (metrics.jsonl's "valid" rows): its default
    config's 8 batches of 8 crops of 512 tokens, seed 0."""
    cfg = TrainConfig()
    _, valid = split_rows(dataset, cfg.valid_fraction)
    if not valid:
        return None
    sampler = CropSampler(dataset, valid, cfg.crop_len, 0.0)
    return validation_loss(model, sampler, cfg, torch.device("cpu"), autocast)


# ---------------------------------------------------------------- 2. pieces

def style_figures(midi, n_bars):
    """The style figures of one piece (or a song's window) of ``n_bars`` bars."""
    return {"grooving": grooving_similarity(midi), "h1": pitch_class_entropy(midi, 1),
            "h4": pitch_class_entropy(midi, 4),
            "drum_repetition": repetition(midi, "drums", WINDOW_BARS),
            "pitched_repetition": repetition(midi, "pitched", WINDOW_BARS),
            "out_of_scale": out_of_scale_share(midi),
            "notes_per_bar": len(grid_notes(midi).tick) / max(n_bars, 1e-9)}


def reference_songs(dataset, split="test"):
    """Mean style figures of the middle 6 bars of the split's songs (decoded from their
    tokens), and how many songs."""
    tokenizer = CPTokenizer()
    rows = []
    for i in dataset.split_ids(split):
        midi = tokenizer.decode(dataset.song(i), dataset.index[i]["tempo_bpm"])
        rows.append(style_figures(middle_window(midi, WINDOW_BARS), WINDOW_BARS))
    keys = [key for key, _ in STYLE] + ["out_of_scale"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a figure no song defines: NaN
        means = {k: float(np.nanmean([r[k] for r in rows])) if rows else math.nan for k in keys}
    return {**means, "songs": len(rows)}


def piece(scorer, rhythm, genre, seed, control, sampling=()):
    """One piece through the product's path and its figures (``sampling``: the CLI's
    --sampling settings, e.g. ``["genre.guidance=1"]``)."""
    options = ScoreOptions(genre=genre, seed=seed, control=control, sampling=list(sampling))
    rhythm = rhythm.with_min_density(options.min_density)     # as Scorer.score does
    tokens, midi = scorer.generate(rhythm, options)
    report = scorer.report(midi, rhythm, tokens, options)
    bars = rhythm.duration_s * rhythm.tempo_bpm / 240.0
    try:
        features = excerpt_features(CPTokenizer().encode(midi).tokens)
    except InputError:   # a piece without notes: classify the model's tokens
        features = excerpt_features(tokens)
    return {**style_figures(midi, bars),
            **{k: report["control_error"][k] for k in CONTROL_BANDS},
            "n_tokens": len(tokens), "features": features}


def analyse_clips(scorers, clips, start, end):
    """{(model, clip): rhythm}: each clip analysed once, unless the models map the video to
    controls with different statistics (then once per model)."""
    hist = {m: (s.stats.density_hist, s.stats.strength_hist) for m, s in scorers.items()}
    out = {}
    for clip in clips:
        for m, scorer in scorers.items():
            twin = next((o for o in scorers if (o, clip) in out and hist[o] == hist[m]), None)
            if twin is not None:
                out[m, clip] = out[twin, clip]
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # "end past the video's end": a shorter clip
                out[m, clip] = scorer.analyze(clip, start=start, end=end)
    return out


# ---------------------------------------------------------------- 3. rows and verdict

def paired(base, cand):
    """Means of the pairs where both values are finite, and the standard error of the mean
    difference."""
    b, c = np.asarray(base, float), np.asarray(cand, float)
    ok = np.isfinite(b) & np.isfinite(c)
    n = int(np.count_nonzero(ok))
    if n == 0:
        return math.nan, math.nan, 0.0, 0
    d = c[ok] - b[ok]
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return float(b[ok].mean()), float(c[ok].mean()), se, n


def make_row(name, base, cand, better, tolerance, reference=None, note=""):
    """A table row; ``better``: "lower", "higher", "closer" (to ``reference``), "decisive"
    (the test loss: the candidate must be lower) or "info"."""
    row = {"figure": name, "base": base, "candidate": cand, "difference": cand - base,
           "better": better, "tolerance": tolerance, "reference": reference, "note": note}
    if better == "info" or not (np.isfinite(base) and np.isfinite(cand)):
        row["status"] = "info" if better == "info" else "n/a"
        return row
    if better == "decisive":
        # the same weights twice (a setting judged, --candidate-sampling): the loss ties
        row["status"] = "lower" if cand < base else "same weights" if cand == base else \
            "NOT LOWER"
        return row
    worse = {"lower": cand - base, "higher": base - cand,
             "closer": (abs(cand - reference) - abs(base - reference)
                        if reference is not None and np.isfinite(reference) else 0.0)}[better]
    row["worse_by"] = worse
    row["status"] = "WORSE" if worse > tolerance else "better" if -worse > tolerance else "ok"
    return row


def verdict(rows, setting_changed=False):
    """("candidate wins" | "keep the bundled model", [reasons]). For the same weights under
    two settings (``setting_changed``) the test loss ties: the setting wins where no row is
    worse."""
    reasons = [f"{r['figure']}: not lower" for r in rows if r["status"] == "NOT LOWER"
               or (r["status"] == "same weights" and not setting_changed)]
    decisive = [r for r in rows if r["better"] == "decisive"]
    if not decisive:
        reasons.append("no test loss (the dataset has no test songs)")
    reasons += [f"{r['figure']}: worse by {r['worse_by']:.4g} (tolerance {r['tolerance']:.4g})"
                for r in rows if r["status"] == "WORSE"]
    return ("keep the bundled model" if reasons else "candidate wins"), reasons


def loss_rows(losses):
    rows = []
    for split, per in losses.items():
        if split == "training_valid":
            continue
        _, _, se, n = paired(per["base"]["per_song"], per["candidate"]["per_song"])
        name = f"{split} loss ({n} songs)"
        if split == "test":
            rows.append(make_row(name, per["base"]["loss"], per["candidate"]["loss"], "decisive",
                                 se, note=f"paired SE {se:.4f}"))
        else:
            rows.append(make_row(name, per["base"]["loss"], per["candidate"]["loss"], "lower",
                                 2 * se))
    tv = losses.get("training_valid")
    if tv and tv["base"] is not None:
        rows.append(make_row("valid loss, training's 64 crops", tv["base"]["loss"],
                             tv["candidate"]["loss"], "info", 0.0))
    return rows


def piece_rows(pieces, reference):
    rows = []
    for key, label in STYLE:
        b, c, se, n = paired([p[key] for p in pieces["base"]], [p[key] for p in pieces["candidate"]])
        rows.append(make_row(f"{label} [songs {reference[key]:.3f}]", b, c, "closer", 2 * se,
                             reference[key], _pairs_note(n, len(pieces["base"]))))
    b, c, se, n = paired([p["out_of_scale"] for p in pieces["base"]],
                         [p["out_of_scale"] for p in pieces["candidate"]])
    rows.append(make_row("out-of-scale share", b, c, "lower", 2 * se, None,
                         _pairs_note(n, len(pieces["base"]))))
    for key, band in CONTROL_BANDS.items():
        b, c, se, _ = paired([p[key] for p in pieces["base"]], [p[key] for p in pieces["candidate"]])
        rows.append(make_row(f"control error: {key}", b, c, "lower", max(band, 2 * se), None,
                             f"band {band:g}, 2 SE {2 * se:.4f}"))
    return rows


def _pairs_note(n, total):
    """Where a figure is undefined for some pieces (repetition without drums)."""
    return "" if n == total else f"{n} of {total} pieces define it"


def genre_rows(genre):
    n = sum(map(sum, genre["base"]["confusion"]))
    b, c = genre["base"]["balanced_accuracy"], genre["candidate"]["balanced_accuracy"]
    p = (b + c) / 2
    se = math.sqrt(2 * p * (1 - p) / max(n, 1))     # as for a proportion of n pieces
    rows = [make_row("genre balanced accuracy", b, c, "higher", GENRE_ACCURACY_BAND, None,
                     f"fixed band; 2 SE {2 * se:.3f}")]
    for g in genre["base"]["recall"]:
        i = genre["genres"].index(g)
        n = sum(genre["base"]["confusion"][i])
        b, c = genre["base"]["recall"][g], genre["candidate"]["recall"][g]
        p = (b + c) / 2
        rows.append(make_row(f"  recall {g}", b, c, "higher",
                             2 * math.sqrt(2 * p * (1 - p) / max(n, 1))))
    return rows


def print_table(rows, out=sys.stdout):
    print(f"{'figure':44s} {'base':>9s} {'candidate':>9s} {'difference':>10s} "
          f"{'tolerance':>9s}  verdict", file=out)
    for r in rows:
        tol = "" if r["better"] in ("info", "decisive") else f"{r['tolerance']:.4f}"
        print(f"{r['figure']:44s} {r['base']:9.4f} {r['candidate']:9.4f} "
              f"{r['difference']:+10.4f} {tol:>9s}  {r['status']}"
              + (f" ({r['note']})" if r["note"] else ""), file=out)


# ---------------------------------------------------------------- main

def clip_list(clips):
    if clips:
        return [str(Path(c)) for c in clips]
    return [str(SHARED_VIDEOS / c) for c in CLIPS]


def compare(args):
    t_start = time.perf_counter()
    timings = {}
    torch.set_num_threads(args.threads)
    dataset = TokenDataset(args.data)
    use_bf16 = args.precision == "bf16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16)

    workdir = tempfile.TemporaryDirectory(prefix="vbgm_compare_")
    scorers = {"base": load_scorer(args.base, dataset, False, workdir.name),
               "candidate": load_scorer(args.candidate, dataset, True, workdir.name)}
    genres = scorers["base"].genres
    if scorers["candidate"].genres != genres:
        raise SystemExit(f"the models know other genres: {genres} and "
                         f"{scorers['candidate'].genres}")
    if dataset.genres != genres:
        raise SystemExit(f"the dataset has genres {dataset.genres}, the models {genres}")
    result = {"base": str(args.base), "candidate": str(args.candidate), "data": str(args.data),
              "settings": {"max_songs": args.max_songs, "crops_per_song": args.crops, "crop_len": args.crop_len,
                           "precision": args.precision, "clips": clip_list(args.clips),
                           "start_s": args.start, "end_s": args.end, "seeds": args.seeds,
                           "control": args.control, "classifier": str(args.classifier),
                           "sampling": {m: getattr(args, f"{m}_sampling") for m in MODELS}},
              "models": {m: {"step": s.info.get("step"), "init": s.info.get("init"),
                             "music_stats": s.stats.source,
                             "pitch_range": s.stats.pitch_range}
                         for m, s in scorers.items()}}
    if scorers["base"].stats.pitch_range != scorers["candidate"].stats.pitch_range:
        print("note: the models bound the sampler with different pitch ranges (their music "
              "statistics: " + "; ".join(f"{m}: {s.stats.source}" for m, s in scorers.items())
              + ")", flush=True)

    # 1. loss
    t = time.perf_counter()
    losses = {}
    for split in args.splits:
        rows = dataset.split_ids(split)[:args.max_songs]
        if not rows:
            print(f"no {split} songs in {args.data}: no {split} loss", flush=True)
            continue
        crops = fixed_crops(dataset, rows, args.crops, args.crop_len)
        losses[split] = {m: split_loss(s.model, crops, autocast) for m, s in scorers.items()}
        print(f"{split} loss ({len(rows)} songs x {args.crops} crops of {args.crop_len}): "
              + ", ".join(f"{m} {v['loss']:.4f}" for m, v in losses[split].items()), flush=True)
    losses["training_valid"] = {m: training_validation(s.model, dataset, autocast)
                                for m, s in scorers.items()}
    timings["loss_s"] = time.perf_counter() - t

    # 2. pieces
    t = time.perf_counter()
    clips = clip_list(args.clips)
    rhythms = analyse_clips(scorers, clips, args.start, args.end)
    timings["analyze_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pieces = {m: [] for m in MODELS}
    keys = []
    for clip in clips:
        for genre in genres:
            for seed in args.seeds:
                keys.append({"clip": Path(clip).name, "genre": genre, "seed": seed})
                for m, scorer in scorers.items():
                    pieces[m].append(piece(scorer, rhythms[m, clip], genre, seed, args.control,
                                           getattr(args, f"{m}_sampling")))
        r = rhythms["base", clip]
        print(f"{Path(clip).name}: {r.duration_s:.1f} s, {r.n_bars} bars at {r.tempo_bpm:.0f} "
              f"BPM: {len(genres) * len(args.seeds)} pieces per model", flush=True)
    timings["generate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    reference = reference_songs(dataset)
    timings["reference_s"] = time.perf_counter() - t

    # genre classifier
    genre = None
    clf = GenreClassifier.from_json(args.classifier) if args.classifier else None
    if clf is not None and clf.genres != genres:
        print(f"note: {args.classifier} knows genres {clf.genres}, the models {genres}: no "
              "genre rows", flush=True)
        clf = None
    if clf is not None:
        y = np.array([genres.index(k["genre"]) for k in keys])
        genre = {"genres": genres}
        for m in MODELS:
            x = np.array([p["features"] for p in pieces[m]])
            genre[m] = scores(y, clf.predict(x), genres, test_chance=True)

    rows = loss_rows(losses) + (genre_rows(genre) if genre else []) + piece_rows(pieces, reference)
    decision, reasons = verdict(rows, args.base_sampling != args.candidate_sampling)
    timings["total_s"] = time.perf_counter() - t_start
    print()
    print_table(rows)
    test = losses.get("test")
    if test:
        print("\ntest loss per attribute (candidate - base): " + ", ".join(
            f"{a} {test['candidate'][a] - test['base'][a]:+.4f}" for a in ATTRIBUTES))
        print("issue 24's bar, test loss <= {:.1f} (target {:.1f}): ".format(*ISSUE_BAR) + ", ".join(
            f"{m} {test[m]['loss']:.3f} {'meets it' if test[m]['loss'] <= ISSUE_BAR[0] else 'not met'}"
            for m in MODELS))
    print(f"\nverdict: {decision}" + "".join(f"\n  - {r}" for r in reasons))
    print(f"({len(keys)} pieces per model; {timings['total_s']:.0f} s: loss "
          f"{timings['loss_s']:.0f} s, analysis {timings['analyze_s']:.0f} s, pieces "
          f"{timings['generate_s']:.0f} s)")
    result.update({
        "verdict": decision, "reasons": reasons, "rows": rows,
        "losses": {split: {m: ({k: v for k, v in per[m].items()} if per[m] else None)
                           for m in MODELS} for split, per in losses.items()},
        "reference_test_songs": reference, "genre": genre,
        "pieces": [{**k, **{m: {f: v for f, v in pieces[m][i].items() if f != "features"}
                            for m in MODELS}} for i, k in enumerate(keys)],
        "timings": timings})
    workdir.cleanup()
    if args.json:
        with atomic_path(Path(args.json)) as tmp:
            tmp.write_text(json.dumps(result, indent=1, default=_json_default))
    return result


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the model to beat (the bundled model)")
    p.add_argument("candidate", help="the new weights (copy a run's model.safetensors first)")
    p.add_argument("--data", required=True, help="the prepared dataset (vbgm prepare)")
    p.add_argument("--splits", nargs="+", default=["test", "valid"],
                   help="held-out splits to take the loss on (test decides)")
    p.add_argument("--max-songs", type=int, default=None,
                   help="the first N songs of each split only (a quick check, not a verdict)")
    p.add_argument("--crops", type=int, default=4, help="crops per song")
    p.add_argument("--crop-len", type=int, default=512, help="tokens per crop")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="arithmetic of the loss (bf16 autocast: ~1.5x faster, +-0.0003)")
    p.add_argument("--clips", nargs="+", default=None,
                   help=f"videos (default: {', '.join(CLIPS)} of {SHARED_VIDEOS})")
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--end", type=float, default=20.0, help="seconds of each clip")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--control", type=float, default=0.7)
    for m in ("base", "candidate"):   # a default setting is judged like weights: same model twice
        p.add_argument(f"--{m}-sampling", nargs="+", default=[], metavar="ATTR.SETTING=V",
                       help=f"the {m}'s --sampling settings for its pieces (default: none)")
    p.add_argument("--classifier", default=str(CLASSIFIER),
                   help="the fitted genre classifier (scripts/genre_classifier.py); '' = none")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", default=None, help="write every figure here")
    return p.parse_args(argv)


def main(argv=None):
    return compare(parse_args(argv))


if __name__ == "__main__":
    main()
