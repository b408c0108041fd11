"""Video analysis speed vs plain decoding (old OpenCV frame path vs ffmpeg at analysis size),
the old-vs-new analysis comparison, and peak memory on a long clip.

    python benchmarks/bench_analyze.py [--clip ../shared/videos/bottle-detection.mp4]
        [--seconds 24] [--repeats 3] [--long-minutes 10] [--no-memory] [--presets]
    python benchmarks/bench_analyze.py --compare ../shared/videos   # results old vs new only

For each of 360p, 720p, 1080p (the clip looped and re-encoded with ffmpeg, H.264, into a temp
folder) one run measures, interleaved, ``--repeats`` times each (medians printed):
  * ffmpeg decode-only: ``ffmpeg -threads 2 -i clip -f null -`` (the floor the issue names);
  * OpenCV decode-only: ``cv2.VideoCapture`` grab + retrieve of every frame;
  * old analysis: the former frame path (OpenCV decoding in a thread, cv2.resize INTER_AREA to
    the analysis size, kept here as ``opencv_frames``) into the same analysis;
  * new analysis: ``analyze_video`` (ffmpeg scales and converts, frames from a raw-video pipe);
and prints each analysis ÷ each decode-only. Then loops the clip to 1 and to ``--long-minutes``
minutes and prints each run's peak RSS (separate processes; ffmpeg's, a child, apart) to show
memory is flat in length. ``--compare`` analyses every clip of a folder both ways and prints
tempo, cuts and the share of bars whose density agrees within ±1. ``--presets`` compares DIS
presets. Results are recorded in docs/VIDEO.md and docs/PERFORMANCE.md.
"""

import argparse
import math
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CLIP = REPO.parent / "shared" / "videos" / "bottle-detection.mp4"
SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *map(str, args)], check=True)


def ffmpeg_decode_only(path):
    """Seconds of ``ffmpeg -threads 2 -i clip -f null -`` (decoding, no conversion)."""
    t0 = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-threads", "2", "-i", str(path),
                    "-f", "null", "-"], check=True)
    return time.perf_counter() - t0


def opencv_decode_only(path):
    """(frames, seconds) of plain OpenCV decoding (grab + retrieve every frame)."""
    cap = cv2.VideoCapture(str(path))
    n, t0 = 0, time.perf_counter()
    while cap.grab():
        cap.retrieve()
        n += 1
    cap.release()
    return n, time.perf_counter() - t0


def opencv_frames(path, short_side):
    """The former frame path (before issue 19): OpenCV decodes in a thread, each frame resized
    at once with cv2.resize(INTER_AREA); times from CAP_PROP_POS_MSEC. Whole file only."""
    from vbgm_core.video.frames import analysis_size

    cap = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
    size = analysis_size(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), short_side)
    out = queue.Queue(maxsize=32)

    def decode():
        prev_t = -math.inf
        while cap.grab():
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= prev_t:
                continue
            prev_t = t
            ok, frame = cap.retrieve()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            if (frame.shape[1], frame.shape[0]) != size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            out.put((t, frame))
        cap.release()
        out.put(None)

    threading.Thread(target=decode, daemon=True).start()
    while (item := out.get()) is not None:
        yield item


def analyze_old(path):
    """``analyze_video`` with the former OpenCV frame path (same probe, same analysis)."""
    from vbgm_core.video import frames, rhythm

    info = frames.probe(path)
    return rhythm._analyze(opencv_frames(path, frames.DEFAULT_SHORT_SIDE), None, None, None,
                           short_side=frames.DEFAULT_SHORT_SIDE, name=str(path),
                           span_s=info.duration_s, expected_s=info.duration_s,
                           fps_meta=info.fps_meta, source=str(path))


def analyze_new(path):
    from vbgm_core.video import analyze_video

    return analyze_video(path)


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def load():
    return os.getloadavg()[0]


def speed_table(clip, seconds, repeats, tmp):
    print(f"clip: {clip.name}, {seconds:g} s (looped), libx264 veryfast crf 23, medians of "
          f"{repeats} interleaved runs, cv2 threads {cv2.getNumThreads()}")
    print(f"{'res':>6} {'frames':>6} {'ffmpeg dec':>10} {'cv2 dec':>8} {'old ana':>8} "
          f"{'new ana':>8} | {'old/ff':>6} {'new/ff':>6} {'old/cv':>6} {'new/cv':>6} "
          f"{'old/new':>7} {'load':>5}")
    for name, (w, h) in SIZES.items():
        src = tmp / f"{name}.mp4"
        ffmpeg("-stream_loop", "-1", "-i", clip, "-t", seconds, "-vf", f"scale={w}:{h}", "-an",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", src)
        runs = {"ff": [], "cv": [], "old": [], "new": []}
        loads = []
        n = 0
        for _ in range(repeats):
            runs["ff"].append(ffmpeg_decode_only(src))
            n, sec = opencv_decode_only(src)
            runs["cv"].append(sec)
            runs["old"].append(timed(analyze_old, src)[0])
            runs["new"].append(timed(analyze_new, src)[0])
            loads.append(load())
        m = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{name:>6} {n:6d} {m['ff']:9.2f}s {m['cv']:7.2f}s {m['old']:7.2f}s "
              f"{m['new']:7.2f}s | {m['old'] / m['ff']:6.2f} {m['new'] / m['ff']:6.2f} "
              f"{m['old'] / m['cv']:6.2f} {m['new'] / m['cv']:6.2f} "
              f"{m['old'] / m['new']:7.2f} {statistics.median(loads):5.1f}", flush=True)


def compare(folder):
    """Old vs new frame path on every clip of ``folder``: tempo, cuts, and bar densities (with
    the automatic tempo, and on the same grid: the new path given the old path's tempo)."""
    from vbgm_core.video import analyze_video

    clips = sorted(p for p in Path(folder).rglob("*") if p.suffix in {".mp4", ".mkv"})
    print(f"{'clip':>36} {'bars':>4} {'tempo old/new':>13} {'cuts same':>9} {'F corr':>6} "
          f"{'±1 auto':>7} {'±1 same grid':>12} {'= same grid':>11}")
    n_auto = ok_auto = n_grid = ok_grid = same_tempo = same_cuts = 0
    for clip in clips:
        a, b = analyze_old(clip), analyze_new(clip)
        g = analyze_video(clip, tempo=a.tempo_bpm)
        da, db, dg = (np.array([x.density for x in r.bars]) for r in (a, b, g))
        k = min(len(da), len(db))
        auto = int(np.sum(np.abs(da[:k] - db[:k]) <= 1))
        grid = int(np.sum(np.abs(da - dg) <= 1))
        n_auto, ok_auto = n_auto + max(len(da), len(db)), ok_auto + auto
        n_grid, ok_grid = n_grid + len(da), ok_grid + grid
        cuts = len(a.cuts) == len(b.cuts) and np.allclose(a.cuts, b.cuts, atol=1e-3)
        same_cuts += cuts
        same_tempo += a.tempo_bpm == b.tempo_bpm
        fa, fb = (np.array([f for _, f in r.motion]) for r in (a, b))
        m = min(len(fa), len(fb))
        print(f"{clip.name[:36]:>36} {len(da):4d} {a.tempo_bpm:6.1f}/{b.tempo_bpm:<6.1f} "
              f"{str(cuts) + f' ({len(b.cuts)})':>9} {np.corrcoef(fa[:m], fb[:m])[0, 1]:6.3f} "
              f"{auto / max(len(da), len(db)):7.0%} {grid / len(da):12.0%} "
              f"{np.mean(da == dg):11.0%}", flush=True)
    print(f"{len(clips)} clips: tempo unchanged on {same_tempo}, cuts on {same_cuts}; bar "
          f"densities within ±1: {ok_auto}/{n_auto} ({ok_auto / n_auto:.1%}) with the automatic "
          f"tempo, {ok_grid}/{n_grid} ({ok_grid / n_grid:.1%}) on the same grid")


def peak_rss_child(path):
    """Run the analysis in a fresh process; return (frames, seconds, peak RSS MiB of the
    Python process, of its largest child: ffmpeg)."""
    code = ("import resource, sys, time; from vbgm_core.video import analyze_video; "
            "t=time.perf_counter(); r=analyze_video(sys.argv[1]); "
            "print(len(r.motion), time.perf_counter()-t, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    return int(out[0]), float(out[1]), float(out[2]), float(out[3])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--seconds", type=float, default=24.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--presets", action="store_true")
    p.add_argument("--compare", type=Path, metavar="FOLDER")
    args = p.parse_args()
    if args.compare:
        compare(args.compare)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        speed_table(args.clip, args.seconds, args.repeats, tmp)
        if args.presets:
            from vbgm_core.video import flow

            src = tmp / "360p.mp4"
            base = None
            for pname in ("ULTRAFAST", "FAST", "MEDIUM"):
                flow.DIS_PRESET = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{pname}")
                ana, r = timed(analyze_new, src)
                speeds = np.array([b.speed for b in r.bars])
                base = speeds if base is None else base
                print(f"DIS {pname:9s}: {len(r.motion) / ana:5.0f} frames/s, mean bar speed "
                      f"{speeds.mean():.4f}, ratio to ULTRAFAST {np.mean(speeds / base):.3f}")
            flow.DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
        if not args.no_memory:
            for minutes in (1.0, args.long_minutes):
                long = tmp / f"long{minutes:g}.mp4"
                ffmpeg("-stream_loop", "-1", "-i", args.clip, "-t", minutes * 60, "-c", "copy",
                       "-an", long)
                n, sec, rss, child = peak_rss_child(long)
                print(f"{minutes:g} min loop: {n} frames, {n / sec:.0f} frames/s, "
                      f"peak RSS {rss:.0f} MiB (ffmpeg {child:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
