"""Write vbgm_core/assets/music_stats.json from a prepared dataset's stats.json.

The video side maps motion speed to bar density and saliency to strength by matching
percentiles with these distributions (METHOD.md §1.2). Rebuild after re-preparing the data:

    python scripts/export_music_stats.py data/midi_genre
"""

import json
import sys
from pathlib import Path

from vbgm_core.files import atomic_path
from vbgm_core.training.data import TokenDataset

OUT = Path(__file__).resolve().parents[1] / "vbgm_core" / "assets" / "music_stats.json"


def main(dataset_dir):
    ds = TokenDataset(dataset_dir)
    stats = {"density_hist": ds.stats["density_hist"], "strength_hist": ds.stats["strength_hist"],
             "source": f"{ds.meta['source']}: {ds.meta['n_songs']} songs, "
                       f"{ds.meta['n_tokens']} tokens (vbgm prepare)"}
    with atomic_path(OUT) as tmp:
        tmp.write_text(json.dumps(stats, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
