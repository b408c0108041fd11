"""Throughput of `vbgm batch`: local process pool vs Ray actors, in clips per minute.

    python benchmarks/bench_batch.py --clips 8 --seconds 10 --jobs 2 [--address HOST:PORT]

Cuts ``--clips`` real clips of ``--seconds`` from the bundled sample and ../shared/videos (when
present), then runs the real CLI once per configuration, MIDI and MP4 outputs as a user gets
them, and prints the wall time of each whole command (start-up, model loads, scoring, landing
the files) and clips per minute. The Ray runs use the head at ``--address`` or start a private
one on 127.0.0.1 with ``--jobs`` CPUs (stopped at the end). Every figure printed is measured in
this run.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VBGM = Path(sys.executable).parent / "vbgm"
SOURCES = [ROOT / "examples/media/bigbuckbunny.mp4"] + sorted(
    (ROOT.parent / "shared/videos").glob("*.mp4"))


def make_clips(folder, n, seconds):
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for k in range(n):
        src = SOURCES[k % len(SOURCES)]
        out = folder / f"clip{k:03d}.mp4"
        # loop the source so that every clip is `seconds` long, whatever the source's length
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                        "-t", str(seconds), "-an", "-vf", "scale=-2:360", "-c:v", "libx264",
                        "-preset", "ultrafast", str(out)], check=True)
        clips.append(out)
    return clips


def start_head(cpus):
    temp = tempfile.mkdtemp(prefix="vbgm-ray.", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    head = subprocess.Popen([str(VBGM.parent / "ray"), "start", "--head", "--block",
                             "--node-ip-address=127.0.0.1", f"--port={port}",
                             f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false",
                             "--disable-usage-stats", "--object-store-memory=200000000",
                             f"--temp-dir={temp}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(1)
    time.sleep(3)   # the raylet registers after the GCS answers
    return head, temp, address


def run(clips, out, *extra):
    t0 = time.perf_counter()
    proc = subprocess.run([str(VBGM), "batch", *map(str, clips), "-o", str(out),
                           "--progress", "none", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"vbgm batch {' '.join(extra)} failed:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    per_clip = sorted(c["seconds"] for c in summary["clips"])
    return wall, per_clip[len(per_clip) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--address", default=None, help="a running Ray head (default: start one)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_batch."))
    head = temp = None
    try:
        clips = make_clips(work / "in", args.clips, args.seconds)
        address = args.address
        if address is None:
            head, temp, address = start_head(args.jobs)
        configs = [("local", "1", ["--jobs", "1"]),
                   ("local", str(args.jobs), ["--jobs", str(args.jobs)]),
                   ("ray", str(args.jobs), ["--engine", "ray", "--address", address,
                                            "--jobs", str(args.jobs)])]
        print(f"{args.clips} clips of {args.seconds:g} s, {os.cpu_count()} CPUs, "
              f"Ray head {address}, load average {os.getloadavg()[0]:.1f} at the start")
        print(f"{'engine':<7}{'jobs':>5}{'wall s':>9}{'clips/min':>11}{'median s/clip':>15}")
        for k, (engine, jobs, extra) in enumerate(configs):
            wall, median = run(clips, work / f"out{k}", *extra)
            print(f"{engine:<7}{jobs:>5}{wall:>9.1f}{60 * args.clips / wall:>11.1f}"
                  f"{median:>15.2f}", flush=True)
        same = all((work / "out0" / f"{c.stem}.mid").read_bytes()
                   == (work / f"out{k}" / f"{c.stem}.mid").read_bytes()
                   for c in clips for k in (1, 2))
        print(f"MIDI byte-identical across the three runs: {same}; load average "
              f"{os.getloadavg()[0]:.1f} at the end")
    finally:
        if head is not None:
            head.terminate()
            head.wait(timeout=60)
            shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
