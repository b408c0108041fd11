"""Throughput of `vbgm prepare` and the size of the dataset it writes.

    python benchmarks/bench_prepare.py                      # the whole midi_genre set
    python benchmarks/bench_prepare.py --limit 300 --workers 2

Prints songs/s, tokens/s, the dataset's size on disk and its ratio to the MIDI files' size.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from vbgm_core.training.data import MIDI_SUFFIXES, prepare

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "midi_genre"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("midi_dir", nargs="?", default=str(SHARED))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args()
    files = sorted(f for f in Path(args.midi_dir).rglob("*") if f.suffix.lower() in MIDI_SUFFIXES)
    files = files[:args.limit]
    midi_bytes = sum(f.stat().st_size for f in files)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = prepare(args.midi_dir, Path(tmp) / "ds", workers=args.workers, limit=args.limit)
        seconds = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (Path(tmp) / "ds").iterdir())
    print(f"files        {len(files)} ({summary.n_songs} kept, {len(summary.skipped)} skipped)")
    print(f"time         {seconds:.1f} s with {args.workers or os.cpu_count()} workers, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"throughput   {len(files) / seconds:.1f} songs/s, {summary.n_tokens / seconds:,.0f} tokens/s")
    print(f"dataset      {size / 2**20:.1f} MiB on disk for {summary.n_tokens:,} tokens "
          f"({size / midi_bytes:.2f}x the MIDI files' {midi_bytes / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
