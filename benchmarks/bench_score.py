"""End-to-end `vbgm score`: wall, CPU and peak memory per clip length, resolution and output
kind, each stage's time and how much of the run kept both cores busy, against the cost of
merely decoding the clip.

    python benchmarks/bench_score.py                       # 20 s, 2 min, 10 min x 360p, 720p, 1080p
    python benchmarks/bench_score.py --lengths 20 120 --res 720 --kinds o wav
    python benchmarks/bench_score.py --baseline /tmp/vbgm_head   # also the code in that folder

Clips: the shared videos (../shared/videos: talking, car-detection, bigbuckbunny, chaplin,
bottle-detection; 105 s, speech included for --mix duck) scaled and padded to each resolution,
25 fps H.264 (x264 veryfast, CRF 23, GOP 50) with AAC sound, made once into --clips (default
/tmp/vbgm-bench-clips) and looped with a stream copy to each length.

Each run is the real command (``python -m vbgm_core score CLIP <kind's flags> --report R``) in
a fresh process, watched from outside every 50 ms: the CPU of its whole process tree (ffmpeg
included) from /proc, so the share of the wall time in which at least 1.5 cores were busy
("both cores") is measured, not inferred; peak RSS is the vbgm process's VmHWM (its own
/proc status, read until it exits; ffmpeg's processes are apart); CPU seconds are the tree's
user + system time (wait4). The decode floor is ``ffmpeg -threads 2 -i CLIP -f null -``,
timed the same way. Kinds: midi (--midi), wav (--wav), o (-o OUT.mp4), duck (-o with
--mix duck), stems (--stems DIR). The report's stages (analyze, model_load, generate,
synthesize, master, play+encode, report) give each stage's wall and CPU seconds and, from the
samples inside it, its own both-cores share. Figures: docs/PERFORMANCE.md. The machine is
likely shared: CPU seconds and RSS are the robust figures; wall ratios are paired (the floor
and the runs of one clip follow each other).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "videos"
SOURCES = ("talking.mp4", "car-detection.mp4", "bigbuckbunny.mp4", "chaplin.mp4",
           "bottle-detection.mp4")
WIDTH = {360: 640, 720: 1280, 1080: 1920}
KINDS = {"midi": ["--midi", "{out}/o.mid"], "wav": ["--wav", "{out}/o.wav"],
         "o": ["-o", "{out}/o.mp4"], "duck": ["-o", "{out}/o.mp4", "--mix", "duck"],
         "stems": ["--stems", "{out}/stems"]}
TICK = os.sysconf("SC_CLK_TCK")


def _probe(path, entries, stream=None):
    cmd = ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "csv=p=0", str(path)]
    if stream:
        cmd[3:3] = ["-select_streams", stream]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()


def make_clips(folder, resolutions, lengths):
    """The base clip per resolution and its loops to each length; returns {(res, s): path}."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for res in resolutions:
        base = folder / f"base_{res}p.mp4"
        if not base.is_file():
            w = WIDTH[res]
            cmd, graph = ["ffmpeg", "-v", "error", "-y"], []
            for i, name in enumerate(SOURCES):
                cmd += ["-i", str(SHARED / name)]
                d = float(_probe(SHARED / name, "format=duration"))
                graph.append(f"[{i}:v]scale={w}:{res}:force_original_aspect_ratio=decrease,"
                             f"pad={w}:{res}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,"
                             f"format=yuv420p[v{i}]")
                graph.append(f"[{i}:a]aresample=44100,aformat=channel_layouts=stereo,apad,"
                             f"atrim=0:{d}[a{i}]" if _probe(SHARED / name, "stream=index", "a")
                             else f"anullsrc=r=44100:cl=stereo,atrim=0:{d}[a{i}]")
            graph.append("".join(f"[v{i}][a{i}]" for i in range(len(SOURCES)))
                         + f"concat=n={len(SOURCES)}:v=1:a=1[v][a]")
            tmp = base.with_suffix(".part.mp4")
            subprocess.run(cmd + ["-filter_complex", ";".join(graph), "-map", "[v]", "-map",
                                  "[a]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                                  "-g", "50", "-c:a", "aac", "-b:a", "128k", str(tmp)],
                           check=True)
            tmp.rename(base)
        for length in lengths:
            clip = folder / f"clip_{res}p_{length:g}s.mp4"
            if not clip.is_file():
                subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i",
                                str(base), "-t", f"{length:g}", "-c", "copy", str(clip)],
                               check=True)
            clips[res, length] = clip
    return clips


def _tree(root):
    """PIDs of ``root`` and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        return None


def watched(cmd, env=None, cwd=None):
    """Run ``cmd``; returns {wall_s, cpu_s, rss_mib, samples: [(t, cores busy)], rc}."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples, seen, hwm = [], {}, [0]
    done = threading.Event()

    def sample():
        last_t, last_total = time.time(), 0
        dead = 0          # CPU of tree members that are gone (their last reading)
        while not done.is_set():
            time.sleep(0.05)
            now = {}
            for pid in _tree(proc.pid):
                ticks = _cpu_ticks(pid)
                if ticks is not None:
                    now[pid] = ticks
            for pid, ticks in seen.items():
                if pid not in now:
                    dead += ticks
            seen.clear()
            seen.update(now)
            total = dead + sum(now.values())
            t = time.time()
            samples.append((t, (total - last_total) / TICK / max(t - last_t, 1e-6)))
            last_t, last_total = t, total
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
            except OSError:
                pass

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    return {"wall_s": time.time() - t0, "rc": proc.returncode, "stdout": out, "stderr": err,
            "samples": samples, "rss_mib": hwm[0] / 1024}


def run_measured(cmd, env=None, cwd=None):
    """``watched`` with the CPU seconds of this run alone (RUSAGE_CHILDREN before and after)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = watched(cmd, env, cwd)     # communicate() reaped it: its tree's CPU is in CHILDREN
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r


def both_busy(samples, start=None, end=None):
    """Share of the sampled wall time (in [start, end]) with at least 1.5 cores busy."""
    sel = [c for t, c in samples if (start is None or t >= start) and (end is None or t <= end)]
    return sum(c >= 1.5 for c in sel) / len(sel) if sel else float("nan")


def score_cmd(code, clip, kind, out, model):
    args = [a.format(out=out) for a in KINDS[kind]]
    cmd = [sys.executable, "-m", "vbgm_core", "score", str(clip), *args, "--report",
           f"{out}/report.json", "--progress", "none", "--overwrite", "--seed", "0"]
    if model:
        cmd += ["--model", str(model)]
    env = {**os.environ, "PYTHONPATH": str(code)}
    return cmd, env


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", nargs="+", type=float, default=[20, 120, 600])
    ap.add_argument("--res", nargs="+", type=int, default=[360, 720, 1080], choices=WIDTH)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--kinds-at", type=int, default=720,
                    help="resolution where every kind runs (elsewhere: -o only)")
    ap.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "vbgm-bench-clips")
    ap.add_argument("--model", type=Path, help="model file (default: the bundled model)")
    ap.add_argument("--baseline", type=Path, help="another checkout (e.g. the landed main, "
                    "`git archive HEAD | tar -x -C DIR`) to run with -o beside this one")
    ap.add_argument("--baseline-res", nargs="+", type=int, default=[720],
                    help="resolutions where the baseline runs (default 720)")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--quick", action="store_true", help="20 s and 2 min at 720p, -o and wav")
    args = ap.parse_args()
    if args.quick:
        args.lengths, args.res, args.kinds = [20, 120], [720], ["o", "wav"]
    clips = make_clips(args.clips, args.res, args.lengths)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start; "
          f"clips in {args.clips}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.res:
            for length in args.lengths:
                clip = clips[res, length]
                fps = _probe(clip, "stream=avg_frame_rate", "v:0")
                floor = run_measured(["ffmpeg", "-v", "error", "-threads", "2", "-i", str(clip),
                                      "-f", "null", "-"])
                print(f"\n{res}p {length:g} s ({fps} fps): decode floor {floor['wall_s']:.2f} s "
                      f"wall, {floor['cpu_s']:.2f} CPU-s; load {os.getloadavg()[0]:.1f}",
                      flush=True)
                kinds = args.kinds if res == args.kinds_at else ["o"]
                runs = [("new", REPO, k) for k in kinds]
                if args.baseline and res in args.baseline_res:
                    runs.append(("base", args.baseline, "o"))
                for label, code, kind in runs:
                    out = Path(tmp) / f"{label}_{res}_{length:g}_{kind}"
                    out.mkdir()
                    cmd, env = score_cmd(code, clip, kind, out, args.model)
                    r = run_measured(cmd, env, cwd=out)   # not the checkout: -m puts cwd first
                    if r["rc"]:
                        print(f"  {label} {kind}: FAILED ({r['rc']}): {r['stderr'][-500:]}")
                        continue
                    report = json.loads((out / "report.json").read_text())
                    row = _row(label, res, length, kind, r, floor, report)
                    rows.append(row)
                    _print_row(row)
    _summary(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _row(label, res, length, kind, r, floor, report):
    q = report.get("quality", {})
    stages = []
    for s in report.get("timings", {}).get("stages", []):
        stages.append({**s, "both": both_busy(r["samples"], s["start"], s["end"])})
    return {"code": label, "res": res, "length": length, "kind": kind,
            "duration_s": report["duration_s"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
            "rss_mib": r["rss_mib"], "both_cores": both_busy(r["samples"]),
            "floor_wall_s": floor["wall_s"], "floor_cpu_s": floor["cpu_s"],
            "loudness_lufs": q.get("loudness_lufs"), "true_peak_dbtp": q.get("true_peak_dbtp"),
            "muxed_loudness_lufs": q.get("muxed_loudness_lufs"),
            "muxed_true_peak_dbtp": q.get("muxed_true_peak_dbtp"),
            "mux_encodes": q.get("mux_encodes"), "stages": stages,
            "load": os.getloadavg()[0]}


def _print_row(row):
    per_s = row["cpu_s"] / row["duration_s"]
    loud = "" if row["loudness_lufs"] is None else \
        f"; {row['loudness_lufs']:.2f} LUFS {row['true_peak_dbtp']:.2f} dBTP"
    if row["muxed_loudness_lufs"] is not None:
        loud += (f" (muxed {row['muxed_loudness_lufs']:.2f} / {row['muxed_true_peak_dbtp']:.2f}"
                 f", {row['mux_encodes']} encode(s))")
    print(f"  {row['code']:>4} {row['kind']:>5}: wall {row['wall_s']:6.1f} s, CPU "
          f"{row['cpu_s']:6.1f} s = {per_s:.3f} CPU-s per video-s, wall/CPU "
          f"{row['wall_s'] / row['cpu_s']:.2f}, x floor {row['wall_s'] / row['floor_wall_s']:.1f}"
          f" (CPU x{row['cpu_s'] / max(row['floor_cpu_s'], 1e-9):.1f}), both cores "
          f"{100 * row['both_cores']:.0f}%, peak RSS {row['rss_mib']:.0f} MiB{loud}; load "
          f"{row['load']:.1f}", flush=True)
    if row["stages"]:
        print("        stages: " + ", ".join(
            f"{s['name']} {s.get('wall_s', (s['end'] - s['start'])):.1f}s"
            + (f"/{s['cpu_s']:.1f}cpu" if s.get("cpu_s") is not None else "")
            + (f" both {100 * s['both']:.0f}%" if s["both"] == s["both"] else "")
            for s in row["stages"]), flush=True)


def _summary(rows, args):
    new = [r for r in rows if r["code"] == "new"]
    if not new:
        return
    print("\nsummary (targets: 720p H.264 25 fps, 2 cores)")
    for kind in sorted({r["kind"] for r in new}):
        rss = {r["length"]: r["rss_mib"] for r in new if r["kind"] == kind and r["res"] == 720}
        if len(rss) > 1:
            lo, hi = rss[min(rss)], rss[max(rss)]
            print(f"  peak RSS {kind:>5} at 720p: "
                  + ", ".join(f"{rss[k]:.0f}" for k in sorted(rss))
                  + f" MiB; {max(rss):g} s / {min(rss):g} s = {hi / lo:.2f}x (target <= 1.15x)")
    for r in new:
        if r["kind"] == "o":
            print(f"  -o {r['res']}p {r['length']:g} s: {r['cpu_s'] / r['duration_s']:.3f} "
                  f"CPU-s per video-s (target <= 0.08 at 720p), wall/CPU "
                  f"{r['wall_s'] / r['cpu_s']:.2f} (<= 0.6 on a quiet machine), x decode floor "
                  f"{r['wall_s'] / r['floor_wall_s']:.1f} (<= 4 at 720p, 3 at 1080p for 2 min),"
                  f" both cores {100 * r['both_cores']:.0f}%")
    base = {(r["res"], r["length"]): r for r in rows if r["code"] == "base"}
    for r in new:
        b = base.get((r["res"], r["length"]))
        if r["kind"] == "o" and b:
            print(f"  vs baseline {r['res']}p {r['length']:g} s: CPU {r['cpu_s']:.1f} / "
                  f"{b['cpu_s']:.1f} s = {r['cpu_s'] / b['cpu_s']:.2f}x, RSS {r['rss_mib']:.0f} "
                  f"/ {b['rss_mib']:.0f} MiB, wall {r['wall_s']:.1f} / {b['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
