"""`vbgm batch` with the local engine: unique output names, per-clip seeds, JSON-line progress,
the summary, and SIGTERM ending every worker. Real clips (cut from the bundled sample with
ffmpeg), the real CLI in subprocesses, the bundled model."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_CLIP, vbgm_command

from vbgm_core.batch.plan import clip_seed, plan_outputs
from vbgm_core.errors import InputError

# Three different 3-second clips of the bundled sample (ffmpeg filters make them differ).
CUTS = {"a": ["-ss", "0"], "b": ["-ss", "2", "-vf", "hflip"], "c": ["-ss", "1", "-vf", "vflip"]}


def short_clip(path, cut="a", seconds=3):
    """A real H.264 clip of ``seconds`` cut from the bundled sample into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = CUTS[cut]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args[:2], "-i", str(SAMPLE_CLIP),
                    *args[2:], "-t", str(seconds), "-an", "-c:v", "libx264", "-preset",
                    "ultrafast", str(path)], check=True)
    return path


def broken_clip(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x01not a video" * 300)
    return path


def run_batch_cli(*args, timeout=600):
    return subprocess.run([vbgm_command(), "batch", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def one_line_error(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    return lines


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return [short_clip(root / f"{name}.mp4", name) for name in CUTS]


# -- names and seeds, decided before any job --------------------------------------------------


def test_output_names_are_unique_per_input(tmp_path):
    out = tmp_path / "out"
    # unique names: flat
    assert plan_outputs([tmp_path / "x/one.mp4", tmp_path / "y/two.mov"], out) == ["one", "two"]
    # the same name in two folders: the folders are kept (below their common folder)
    assert plan_outputs([tmp_path / "a/clip.mp4", tmp_path / "b/clip.mp4"], out) == \
        ["a/clip", "b/clip"]
    assert plan_outputs([tmp_path / "s/a/clip.mp4", tmp_path / "s/b/c/Clip.mp4"], out) == \
        ["a/clip", "b/c/Clip"]
    # the same base in one folder (clip.mp4, clip.mov): a suffix
    assert plan_outputs([tmp_path / "clip.mp4", tmp_path / "clip.mov"], out) == ["clip", "clip-2"]
    # an output never takes an input's name, nor the summary's
    assert plan_outputs([out / "shot.mp4"], out) == ["shot-2"]
    assert plan_outputs([tmp_path / "summary.mp4"], out, reserved=[out / "summary.json"]) == \
        ["summary-2"]
    with pytest.raises(InputError, match="given twice"):
        plan_outputs([tmp_path / "clip.mp4", tmp_path / "sub/../clip.mp4"], out)


def test_clip_seed_depends_on_the_batch_seed_and_the_file_name_only():
    s = clip_seed(0, "shots/a.mp4")
    assert s == clip_seed(0, "/elsewhere/a.mp4") == clip_seed(0, Path("a.mp4"))
    assert len({s, clip_seed(1, "a.mp4"), clip_seed(0, "b.mp4"), clip_seed(-1, "a.mp4")}) == 4
    assert all(0 <= clip_seed(k, f"{k}.mp4") < 2**31 for k in range(-50, 50))


# -- the CLI ----------------------------------------------------------------------------------


def test_same_file_names_give_distinct_outputs(tmp_path):
    a = short_clip(tmp_path / "a" / "clip.mp4", "a")
    b = short_clip(tmp_path / "b" / "clip.mp4", "b")
    out = tmp_path / "out"
    proc = run_batch_cli(a, b, "-o", out, "--jobs", "2", "--progress", "none")
    assert proc.returncode == 0, proc.stderr
    for sub, video in (("a", a), ("b", b)):
        assert {p.name for p in (out / sub).iterdir()} == {"clip.mp4", "clip.mid", "clip.json"}
        assert json.loads((out / sub / "clip.json").read_text())["video"] == str(video)
    assert (out / "a/clip.mid").read_bytes() != (out / "b/clip.mid").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    assert [c["outputs"]["midi"] for c in summary["clips"]] == \
        [str(out / "a/clip.mid"), str(out / "b/clip.mid")]
    assert sorted(os.listdir(out)) == ["a", "b", "summary.json"]   # no temporaries left


def test_seed_per_clip_whatever_the_order_and_workers(clips, tmp_path):
    x, y, _ = clips
    first, second = tmp_path / "first", tmp_path / "second"
    assert run_batch_cli(x, y, "-o", first, "--jobs", "2", "--seed", "7",
                         "--progress", "none").returncode == 0
    assert run_batch_cli(y, x, "-o", second, "--jobs", "1", "--seed", "7",
                         "--progress", "none").returncode == 0
    for clip in (x, y):
        name = clip.stem + ".mid"
        assert (first / name).read_bytes() == (second / name).read_bytes()
    # the seed a clip was scored with is clip_seed(batch seed, its name): `vbgm score` repeats it
    seed = clip_seed(7, x)
    assert json.loads((first / f"{x.stem}.json").read_text())["seed"] == seed
    alone = tmp_path / "alone.mid"
    proc = subprocess.run([vbgm_command(), "score", str(x), "--midi", str(alone), "--seed",
                           str(seed), "--progress", "none"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert alone.read_bytes() == (first / f"{x.stem}.mid").read_bytes()
    assert (first / f"{x.stem}.mid").read_bytes() != (first / f"{y.stem}.mid").read_bytes()


def test_jsonl_progress_summary_and_a_broken_clip(clips, tmp_path):
    broken = broken_clip(tmp_path / "broken.mp4")
    out = tmp_path / "out"
    proc = run_batch_cli(clips[0], broken, "-o", out, "--progress", "jsonl")
    assert proc.returncode == 1
    one_line_error(proc.stderr)
    events = [json.loads(line) for line in proc.stdout.splitlines()]   # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds[0] == "batch" and kinds[-1] == "done" and kinds.count("clip") == 2
    assert [e["fraction"] for e in events if e["event"] == "progress"] == [0.5, 1.0]
    failed = next(e for e in events if e["event"] == "clip" and e["status"] == "failed")
    assert failed["video"] == str(broken) and str(broken) in failed["error"]
    assert "\n" not in failed["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["engine"], summary["scored"], summary["failed"], summary["finished"]) == \
        ("local", 1, 1, True)
    ok, bad = summary["clips"]
    assert ok["status"] == "ok" and ok["error"] is None and ok["seconds"] > 0
    assert bad["status"] == "failed" and bad["error"] == failed["error"] and bad["outputs"] is None
    assert sorted(os.listdir(out)) == sorted(
        ["summary.json"] + [f"{clips[0].stem}{s}" for s in (".mp4", ".mid", ".json")])
    # the same command again: the summary exists: one line, exit 2, nothing touched
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_batch_cli(clips[0], broken, "-o", out, "--progress", "none")
    assert again.returncode == 2
    assert one_line_error(again.stderr) == [
        f"vbgm batch: error: {out / 'summary.json'}: output exists (use --overwrite to "
        "replace it, or --summary PATH)"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_batch_wide_errors_before_any_work(clips, tmp_path):
    out = tmp_path / "out"
    proc = run_batch_cli(clips[0], "-o", out, "--genre", "polka", "--progress", "none")
    assert proc.returncode == 2
    assert one_line_error(proc.stderr)[0].startswith("vbgm batch: error: unknown genre 'polka'")
    proc = run_batch_cli(clips[0], clips[0], "-o", out, "--progress", "none")
    assert proc.returncode == 2 and "given twice" in proc.stderr
    assert not out.exists()


# -- SIGTERM ----------------------------------------------------------------------------------


def _children(pid):
    """All descendants of ``pid`` (Linux /proc)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids + [g for k in kids for g in _children(k)]


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")   # a zombie is dead (its parent, or init, reaps it)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigterm_ends_every_worker_and_leaves_no_partial_file(clips, tmp_path):
    videos = [short_clip(tmp_path / f"in/{k}.mp4", "abc"[k % 3], seconds=5) for k in range(4)]
    out = tmp_path / "out"
    proc = subprocess.Popen([vbgm_command(), "batch", *map(str, videos), "-o", str(out),
                             "--jobs", "2", "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = 0
        for line in proc.stdout:   # wait until both workers are busy with a clip
            started += json.loads(line)["event"] == "start"
            if started == 2:
                break
        time.sleep(1.0)   # mid-clip
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)   # EOF on stdout: nobody holds the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143   # 128 + SIGTERM, as for `vbgm score` (issue 27)
    assert "Traceback" not in err and "terminated" in err
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)]
    names = sorted(os.listdir(out))
    assert not [n for n in names if n.startswith(".")]   # no staging folder, no temporaries
    landed = {Path(n).stem for n in names if n != "summary.json"}
    for stem in landed:   # a clip's files land together or not at all
        assert {f"{stem}{s}" for s in (".mp4", ".mid", ".json")} <= set(names)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is False
    assert {c["status"] for c in summary["clips"]} <= {"ok", "cancelled"}
    assert sum(c["status"] == "ok" for c in summary["clips"]) == len(landed)
