"""Loss curves of a model trained in stages (runs continued with --init-from), on one axis.

    python scripts/plot_training_stages.py runs/default runs/default_continue -o docs/model_loss.png

Each run's steps continue from the previous run's last step; a dotted line marks where each
stage starts.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vbgm_core.figures import save_figure  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories, first stage first")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()
    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    valid = []   # every stage's validation losses: the y range is theirs
    for n, run in enumerate(args.runs):
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()
                if line]
        for split, style in (("train", "-"), ("valid", "o-")):
            pts = [(offset + r["step"], r["loss"]) for r in rows if r["split"] == split]
            valid += [loss for _, loss in pts] if split == "valid" else []
            ax.plot(*zip(*pts), style, markersize=3, color=f"C{2 * n + (split == 'valid')}",
                    alpha=1.0 if split == "valid" else 0.45, label=f"{Path(run).name} {split}")
        if n:
            ax.axvline(offset, color="grey", linestyle=":")
        offset += max(r["step"] for r in rows)
    ax.set_xlabel("step (all stages)")
    ax.set_ylabel("loss (sum of the 7 attributes)")
    # the first steps' losses (21 from scratch) would flatten the curves that matter: the
    # range is the validation losses', with room for the training loss's noise
    low, high = min(valid), max(valid)
    ax.set_ylim(low - 0.3 * (high - low) - 0.1, min(high + 0.5 * (high - low) + 0.1, 12))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, args.output, bbox_inches="tight")


if __name__ == "__main__":
    main()
