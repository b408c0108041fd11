"""Rebuild vbgm_core/video/speed_reference.json: per-bar motion speeds over real clips.

Density mapping (METHOD.md §1.2) reads a bar's speed as a percentile of this distribution, so
it must be rebuilt whenever the flow measurement changes (preset, normalisation, analysis
resolution). Usage, from the repository root:

    python scripts/build_speed_reference.py ../shared/videos [-o vbgm_core/video/speed_reference.json]

Every video file under the folder (recursively) is analysed at the package's default settings
with the automatic tempo. A bar's speed is the mean per-frame speed over one bar; to get more
than a handful of samples from short clips, the bar-long window slides over each clip's motion
curve in steps of ``HOP_S`` (windows wholly inside the clip; a clip shorter than one bar gives
one window over its whole length).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from vbgm_core.files import atomic_path
from vbgm_core.video import analyze_video
from vbgm_core.video.flow import DIS_PRESET
from vbgm_core.video.frames import DEFAULT_SHORT_SIDE

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}
HOP_S = 0.25
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "vbgm_core" / "video" / "speed_reference.json"


def window_speeds(rhythm):
    """Mean speed of every bar-long window (hop ``HOP_S``) inside the clip."""
    t = np.array([m[0] for m in rhythm.motion])
    f = np.array([m[1] for m in rhythm.motion])
    bar = rhythm.bar_seconds
    if rhythm.duration_s <= bar:
        return [float(f.mean())]
    starts = np.arange(0.0, rhythm.duration_s - bar + 1e-9, HOP_S)
    return [float(f[(t >= s) & (t < s + bar)].mean()) for s in starts]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("videos", type=Path, help="folder of real video clips")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    clips = sorted(p for p in args.videos.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    speeds, listing = [], []
    for clip in clips:
        rhythm = analyze_video(clip)
        full = window_speeds(rhythm)
        speeds += full
        listing.append({"clip": str(clip.relative_to(args.videos)), "duration_s": rhythm.duration_s,
                        "tempo_bpm": rhythm.tempo_bpm, "windows": len(full)})
        print(f"{clip.name}: {len(full)} windows, tempo {rhythm.tempo_bpm:g}, "
              f"median speed {sorted(full)[len(full) // 2] if full else float('nan'):.4f}")
    if not speeds:
        parser.error(f"{args.videos}: no video clips")
    data = {"unit": "short sides per second (mean optical-flow magnitude per bar)",
            "settings": {"short_side": DEFAULT_SHORT_SIDE, "dis_preset": int(DIS_PRESET),
                         "tempo": "auto", "window": "one bar", "hop_s": HOP_S},
            "clips": listing, "bar_speeds": sorted(round(s, 6) for s in speeds)}
    with atomic_path(args.output) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    print(f"{len(speeds)} windows from {len(clips)} clips -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
