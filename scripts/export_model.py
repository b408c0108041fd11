"""Ship a trained model: RUN_DIR/model.safetensors → vbgm_core/assets/model.safetensors (fp16).

    python scripts/export_model.py runs/default [DATASET]

DATASET (the run's `vbgm prepare` folder) adds the data statistics the Scorer needs to weights
written before `vbgm train` stored them (``music_stats``).

Half precision halves the file (the bundled model must stay small, well under 30 MB); loading
casts the weights back to float32, and generation is unchanged to ~1e-3 in the logits.
"""

import json
import sys
from pathlib import Path

from vbgm_core.model.checkpoint import load_model, save_model
from vbgm_core.training.data import TokenDataset

OUT = Path(__file__).resolve().parents[1] / "vbgm_core" / "assets" / "model.safetensors"


def main(run_dir, dataset=None):
    run_dir = Path(run_dir)
    model, extra = load_model(run_dir / "model.safetensors")
    if dataset is not None and "music_stats" not in extra:
        extra["music_stats"] = TokenDataset(dataset).music_stats()
    if "music_stats" not in extra:
        sys.exit(f"{run_dir}: the weights carry no music statistics: give the dataset folder")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r.get("split") == "valid"]
    extra = {**extra, "run": run_dir.name,
             "valid_loss": valid[-1]["loss"] if valid else None}
    save_model(OUT, model.half(), extra)
    print(f"wrote {OUT} ({OUT.stat().st_size / 2**20:.1f} MiB): {json.dumps(extra)}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
