"""Video analysis speed vs plain decoding, and peak memory on a long clip.

    python benchmarks/bench_analyze.py [--clip ../shared/videos/bottle-detection.mp4]
        [--seconds 15] [--long-minutes 10] [--presets]

For each of 360p, 720p, 1080p (the clip re-encoded with ffmpeg, H.264), prints decode-only
frames/s (OpenCV grab + retrieve, the floor), analysis frames/s (``analyze_video``), and their
time ratio. Then loops the clip to 1 and to ``--long-minutes`` minutes and prints each run's
peak RSS (separate processes), to show memory is flat in video length. ``--presets`` also
compares DIS presets (speed and the resulting bar speeds). Results are recorded in docs/VIDEO.md.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "videos" / "bottle-detection.mp4"
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def decode_only(path):
    """Frames/s of plain decoding (grab + retrieve every frame)."""
    cap = cv2.VideoCapture(str(path))
    n, t0 = 0, time.perf_counter()
    while cap.grab():
        cap.retrieve()
        n += 1
    return n, time.perf_counter() - t0


def analysis(path, preset=None):
    from vbgm_core.video import analyze_video, flow

    if preset is not None:
        flow.DIS_PRESET = preset
    t0 = time.perf_counter()
    r = analyze_video(path)
    return len(r.motion), time.perf_counter() - t0, r


def peak_rss_child(path):
    """Run the analysis in a fresh process; return (frames, seconds, peak RSS MiB)."""
    code = ("import resource, sys, time; from vbgm_core.video import analyze_video; "
            "t=time.perf_counter(); r=analyze_video(sys.argv[1]); "
            "print(len(r.motion), time.perf_counter()-t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), float(out[1]), float(out[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--presets", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"clip: {args.clip.name}, first {args.seconds:g} s, cv2 threads "
              f"{cv2.getNumThreads()}")
        print(f"{'res':>6} {'frames':>6} {'decode fps':>10} {'analyze fps':>11} {'ratio':>6}")
        for name, (w, h) in SIZES.items():
            src = tmp / f"{name}.mp4"
            ffmpeg("-i", args.clip, "-t", args.seconds, "-vf", f"scale={w}:{h}", "-an",
                   "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", src)
            n, dec = decode_only(src)
            m, ana, _ = analysis(src)
            print(f"{name:>6} {n:6d} {n / dec:10.0f} {m / ana:11.0f} {ana / dec:6.2f}")
        if args.presets:
            src = tmp / "360p.mp4"
            base = None
            for pname in ("ULTRAFAST", "FAST", "MEDIUM"):
                preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{pname}")
                m, ana, r = analysis(src, preset)
                speeds = np.array([b.speed for b in r.bars])
                base = speeds if base is None else base
                print(f"DIS {pname:9s}: {m / ana:5.0f} frames/s, mean bar speed "
                      f"{speeds.mean():.4f}, ratio to ULTRAFAST {np.mean(speeds / base):.3f}")
        for minutes in (1.0, args.long_minutes):
            long = tmp / f"long{minutes:g}.mp4"
            ffmpeg("-stream_loop", "-1", "-i", args.clip, "-t", minutes * 60, "-c", "copy",
                   "-an", long)
            n, sec, rss = peak_rss_child(long)
            print(f"{minutes:g} min loop: {n} frames, {n / sec:.0f} frames/s, "
                  f"peak RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
