"""`vbgm batch --engine ray` on a real Ray head (no mocks): the same MIDI as the local engine,
a broken clip reported alone, the summary, and a killed actor's clip retried.

The head: $VBGM_TEST_RAY_ADDRESS (`.ci/run` starts one on 127.0.0.1 with 2 CPUs), else one this
module starts and stops itself, also on 127.0.0.1 (no traffic outside the loopback)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import vbgm_command
from test_batch import broken_clip, one_line_error, run_batch_cli, short_clip

# A single-machine Ray bound to the loopback: Ray reaches 127.0.0.1 only with its cluster mode
# off (else it rewrites the address to the machine's network address). Before `import ray`.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

if os.environ.get("VBGM_TEST_RAY_ADDRESS"):
    import ray  # CI gave a head: Ray must be there, a skip would hide a broken set-up
else:
    ray = pytest.importorskip("ray", reason="needs Ray (pip install 'vbgm[ray]')")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """A Ray head's address; the test process is connected to it (to find and kill actors)."""
    address = os.environ.get("VBGM_TEST_RAY_ADDRESS")
    head = temp = None
    if not address:
        temp = tempfile.mkdtemp(prefix="vbgm-ray.", dir="/tmp")   # socket paths stay short
        port = _free_port()
        address = f"127.0.0.1:{port}"
        ray_cli = Path(sys.executable).parent / "ray"
        head = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
             "--disable-usage-stats", "--object-store-memory=200000000", f"--temp-dir={temp}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                ray.init(address=address, namespace="vbgm", logging_level="error",
                         log_to_driver=False)
                break
            except Exception:
                if time.time() > deadline or (head is not None and head.poll() is not None):
                    raise
                time.sleep(1)
        yield address
    finally:
        ray.shutdown()
        if head is not None:
            head.terminate()   # `ray start --block` stops the processes it started
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, 9)
                head.wait()
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_inputs")
    good = [short_clip(root / f"{name}.mp4", name) for name in "abc"]
    return good, broken_clip(root / "broken.mp4")


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    """The local engine's run over the same inputs: the reference."""
    good, broken = inputs
    out = tmp_path_factory.mktemp("local") / "out"
    proc = run_batch_cli(*good, broken, "-o", out, "--jobs", "2", "--seed", "3",
                         "--progress", "none")
    return out, proc


def test_ray_engine_gives_the_local_engines_files(inputs, local_run, ray_address, tmp_path):
    good, broken = inputs
    local_out, local_proc = local_run
    out = tmp_path / "out"
    proc = run_batch_cli(*good, broken, "-o", out, "--engine", "ray", "--address", ray_address,
                         "--seed", "3", "--progress", "none", timeout=600)
    assert (local_proc.returncode, proc.returncode) == (1, 1), proc.stderr
    one_line_error(proc.stderr)
    for clip in good:   # byte-identical music, whichever engine and worker
        midi = f"{clip.stem}.mid"
        assert (out / midi).read_bytes() == (local_out / midi).read_bytes()
    assert sorted(os.listdir(out)) == sorted(os.listdir(local_out))   # same names, no temporaries
    summary = json.loads((out / "summary.json").read_text())
    local = json.loads((local_out / "summary.json").read_text())
    assert (summary["engine"], summary["jobs"], summary["scored"], summary["failed"]) == \
        ("ray", 2, 3, 1)
    assert summary["finished"] is True and summary["seed"] == 3
    for row, ref in zip(summary["clips"], local["clips"]):
        assert (row["video"], row["status"], row["seed"], row["error"]) == \
            (ref["video"], ref["status"], ref["seed"], ref["error"])
        assert row["worker"].startswith("vbgm-batch-") and row["attempts"] == 1
    bad = summary["clips"][-1]
    assert bad["video"] == str(broken) and bad["status"] == "failed" and bad["outputs"] is None
    assert bad["error"].startswith(f"{broken}: ") and "\n" not in bad["error"]
    assert all(c["status"] == "ok" and c["seconds"] > 0 for c in summary["clips"][:3])
    printed = proc.stdout.splitlines()   # the table names the failure with its one-line error
    assert printed[-1] == f"3 scored, 1 failed; summary: {out / 'summary.json'}"
    assert f"broken  FAILED  {bad['error']}" in printed


def test_a_killed_actor_s_clip_is_retried_and_finishes(inputs, local_run, ray_address,
                                                       tmp_path):
    good, _ = inputs
    local_out, _ = local_run
    out = tmp_path / "out"
    proc = subprocess.Popen([vbgm_command(), "batch", *map(str, good), "-o", str(out),
                             "--engine", "ray", "--address", ray_address, "--jobs", "2",
                             "--seed", "3", "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events, killed = [], None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            events.append(event)
            if event["event"] == "start" and killed is None:
                killed = event   # its actor is at work on this clip: kill it
                ray.kill(ray.get_actor(event["worker"], namespace="vbgm"), no_restart=True)
        err = proc.stderr.read()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    retries = [e for e in events if e["event"] == "retry"]
    assert [(e["video"], e["worker"]) for e in retries] == [(killed["video"], killed["worker"])]
    again = [e for e in events if e["event"] == "start" and e["video"] == killed["video"]]
    assert [e["attempt"] for e in again] == [1, 2] and again[1]["worker"] != killed["worker"]
    summary = json.loads((out / "summary.json").read_text())
    row = next(c for c in summary["clips"] if c["video"] == killed["video"])
    assert (row["status"], row["attempts"]) == ("ok", 2)
    assert summary["scored"] == 3 and summary["failed"] == 0
    for clip in good:   # the retried clip's music too is the local engine's
        midi = f"{clip.stem}.mid"
        assert (out / midi).read_bytes() == (local_out / midi).read_bytes()
    assert not [n for n in os.listdir(out) if n.startswith(".")]


def test_sigterm_ends_the_batch_and_its_actors(inputs, ray_address, tmp_path):
    good, _ = inputs
    out = tmp_path / "out"
    proc = subprocess.Popen([vbgm_command(), "batch", *map(str, good), "-o", str(out),
                             "--engine", "ray", "--address", ray_address, "--jobs", "2",
                             "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "start":
                break
        time.sleep(1.0)   # mid-clip
        proc.send_signal(15)
        _, err = proc.communicate(timeout=60)   # ends, and nobody holds its stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert one_line_error(err) == ["vbgm batch: interrupted"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is False
    deadline = time.time() + 30
    for row in summary["clips"]:   # every actor the batch used is gone
        if row["worker"]:
            while True:
                try:
                    ray.get_actor(row["worker"], namespace="vbgm")
                except ValueError:
                    break
                assert time.time() < deadline, f"actor {row['worker']} still alive"
                time.sleep(0.5)
    names = os.listdir(out)
    assert not [n for n in names if n.startswith(".")]
    for stem in {Path(n).stem for n in names if n != "summary.json"}:
        assert {f"{stem}{s}" for s in (".mp4", ".mid", ".json")} <= set(names)
