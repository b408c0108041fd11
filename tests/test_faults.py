"""Never lose a user's file (issue 13): the fault suite.

Every case runs the real `vbgm` command in a subprocess on real clips (the bundled Big Buck
Bunny sample and media cut from it with ffmpeg) and checks what a user would: the exit code,
stderr (one line, no traceback), the sha256 of every input before and after, and the files in
the output folder before and after. Kills are real signals sent to the running process once
its progress line for the stage has appeared. Disk-full and read-only folders are real (a small
tmpfs, a read-only mount, `chattr +i`); they skip with the reason where this process cannot
mount or set the flag (not root).

docs/RELIABILITY.md lists the cases with their expected answers; keep the two in step.
"""

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLE_CLIP, vbgm_command

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(not FFMPEG or not shutil.which("ffprobe"),
                                reason="needs ffmpeg and ffprobe on PATH")


# ---------------------------------------------------------------- helpers


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def listing(folder):
    """Every entry under ``folder`` (hidden ones included), relative, sorted."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def error_line(stderr, bar_prefix=None):
    """The one line stderr holds (progress-bar redraws and ``bar_prefix`` bar lines aside);
    fails if there is a traceback or more than one line."""
    assert "Traceback" not in stderr, stderr
    lines = [ln.rsplit("\r", 1)[-1].strip() for ln in stderr.split("\n")]
    lines = [ln for ln in lines if ln and not (bar_prefix and ln.startswith(bar_prefix))]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


def ffprobe(path, entries):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", entries, "-of", "csv=p=0",
                          f"file:{Path(path).absolute()}"], capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def wav_seconds(path):
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def ffmpeg(*args):
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True)


class Untouched:
    """sha256 of the inputs and the listing of the folders, checked again by ``check()``."""

    def __init__(self, inputs=(), folders=()):
        self.hashes = {Path(p): sha256(p) for p in inputs}
        self.listings = {Path(f): listing(f) for f in folders}

    def check(self):
        for path, digest in self.hashes.items():
            assert path.is_file() and sha256(path) == digest, f"{path} changed or vanished"
        for folder, before in self.listings.items():
            assert listing(folder) == before, f"{folder}: files changed"


@pytest.fixture(scope="module")
def vbgm():
    return vbgm_command()


@pytest.fixture
def env(tmp_path):
    """The environment of a run: its own TMPDIR, so temporaries left behind are seen."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return {**os.environ, "TMPDIR": str(tmp)}


def run(vbgm, args, cwd, env=None, timeout=300):
    return subprocess.run([vbgm, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def refused(vbgm, args, cwd, guard, needle, env=None):
    """Run, expect exit 2 with one stderr line containing ``needle``; nothing touched."""
    done = run(vbgm, args, cwd, env)
    line = error_line(done.stderr)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert needle in line, line
    guard.check()
    return line


class Live:
    """A running `vbgm` in its own session (process group), its output read as it comes."""

    def __init__(self, vbgm, args, cwd, env=None):
        self.proc = subprocess.Popen([vbgm, *map(str, args)], cwd=cwd, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines, self.stdout, self.stderr = queue.Queue(), [], []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, self.lines),
                             daemon=True),
            threading.Thread(target=self._read_raw, args=(self.proc.stderr, self.stderr),
                             daemon=True)]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, store, lines):
        for line in stream:
            store.append(line)
            lines.put(line)
        lines.put(None)

    @staticmethod
    def _read_raw(stream, store):
        while chunk := stream.read(1):
            store.append(chunk)

    def wait_for_stage(self, stage, fraction=0.0, timeout=180):
        """Block until a JSON progress line of ``stage`` at >= ``fraction`` arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            assert line is not None, f"ended before {stage}: {''.join(self.stderr)}"
            event = json.loads(line)
            if event.get("stage") == stage and event.get("fraction", 0) >= fraction:
                return
        pytest.fail(f"no {stage} progress within {timeout} s")

    def wait_for_stderr(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        while text not in "".join(self.stderr):
            assert self.proc.poll() is None, f"ended before {text!r}: {''.join(self.stderr)}"
            assert time.monotonic() < deadline, f"no {text!r} within {timeout} s"
            time.sleep(0.05)

    def children(self):
        """Names of the process's direct children (from /proc)."""
        names = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            try:
                pids = (task / "children").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    names.append(Path(f"/proc/{pid}/comm").read_text().strip())
                except OSError:
                    pass
        return names

    def wait_for_child(self, name=None, timeout=120):
        deadline = time.monotonic() + timeout
        while not any(name is None or n == name for n in self.children()):
            assert self.proc.poll() is None, f"ended before a {name} child: {''.join(self.stderr)}"
            assert time.monotonic() < deadline, f"no {name} child within {timeout} s"
            time.sleep(0.02)

    def finish(self, timeout=120):
        """Exit code, once the process has ended and all its output is read."""
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=timeout)
        return code

    def group_gone(self, timeout=15):
        """True once no process of its group is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False


# ---------------------------------------------------------------- media


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Clips cut from the bundled sample with ffmpeg (read-only; copy one to use it as an
    input beside outputs)."""
    root = tmp_path_factory.mktemp("media")
    clips = {"sample": SAMPLE_CLIP}
    clips["short"] = root / "short.mp4"             # 2 s, starts on a key frame
    ffmpeg("-i", SAMPLE_CLIP, "-t", 2, "-c", "copy", clips["short"])
    clips["other"] = root / "other.mp4"             # 3 s of another part
    ffmpeg("-ss", 2, "-i", SAMPLE_CLIP, "-t", 3, "-c:v", "libx264", "-preset", "ultrafast",
           "-an", clips["other"])
    frame = root / "frame.png"
    ffmpeg("-ss", 1, "-i", SAMPLE_CLIP, "-frames:v", 1, frame)
    clips["still"] = root / "still.mp4"             # a still picture: no visual beats
    ffmpeg("-loop", 1, "-i", frame, "-t", 3, "-r", 25, "-pix_fmt", "yuv420p", clips["still"])
    clips["one_second"] = root / "one_second.mp4"
    ffmpeg("-i", SAMPLE_CLIP, "-t", 1, "-c:v", "libx264", "-preset", "ultrafast", "-an",
           clips["one_second"])
    # few, irregular frames (every 0.4 s, then every 0.56 s): the decoder's frame step guess
    # ran past the stream's end
    clips["few"] = root / "few.avi"
    ffmpeg("-i", SAMPLE_CLIP, "-an", "-vf",
           "select='not(mod(n,10))*lt(t,3)+not(mod(n,14))*gte(t,3)'", "-fps_mode", "vfr",
           "-c:v", "mpeg4", "-q:v", 5, clips["few"])
    # 21 s at 720p: a mux that re-encodes (range not on a key frame) lasts seconds
    clips["long"] = root / "long.mp4"
    ffmpeg("-stream_loop", 3, "-i", SAMPLE_CLIP, "-c", "copy", clips["long"])
    # a broken stream: the middle 30 % of the file replaced by fixed noise
    data = bytearray(SAMPLE_CLIP.read_bytes())
    a, b = int(len(data) * 0.3), int(len(data) * 0.6)
    data[a:b] = hashlib.shake_256(b"vbgm").digest(b - a)
    clips["corrupt"] = root / "corrupt.mp4"
    clips["corrupt"].write_bytes(bytes(data))
    for name, path in clips.items():
        if name != "sample":
            path.chmod(0o444)
    return clips


@pytest.fixture
def work(tmp_path, media):
    """A folder holding a copy of the short clip (``work / "clip.mp4"``): the user's folder."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copy(media["short"], folder / "clip.mp4")
    return folder


# ---------------------------------------------------------------- data loss: --overwrite


def test_overwrite_never_replaces_a_folder_holding_the_input(vbgm, work):
    guard = Untouched([work / "clip.mp4"], [work])
    refused(vbgm, ["score", "clip.mp4", "--midi", "m.mid", "--stems", ".", "--overwrite"],
            work, guard, "holds an input")
    sub = work / "S"
    sub.mkdir()
    shutil.copy(work / "clip.mp4", sub / "myvideo.mp4")
    guard = Untouched([sub / "myvideo.mp4"], [work])
    refused(vbgm, ["score", "S/myvideo.mp4", "--midi", "m.mid", "--stems", "S", "--overwrite"],
            work, guard, "holds an input")


def test_prepare_never_replaces_its_midi_folder(vbgm, tmp_path):
    midi = tmp_path / "midi" / "pop"
    midi.mkdir(parents=True)
    for name in ("pop909_001.mid", "chuggachugga.mid"):
        shutil.copy(ROOT / "tests" / "fixtures" / "midi" / name, midi / name)
    files = sorted(midi.iterdir())
    guard = Untouched(files, [tmp_path])
    refused(vbgm, ["prepare", "midi", "-o", "midi", "--overwrite"], tmp_path, guard,
            "is an input")
    refused(vbgm, ["prepare", "midi/pop", "-o", "midi", "--overwrite"], tmp_path, guard,
            "holds an input")


def test_eval_never_replaces_its_video_folder(vbgm, work):
    guard = Untouched([work / "clip.mp4"], [work])
    refused(vbgm, ["eval", ".", "-o", ".", "--overwrite", "--quick"], work, guard, "is an input")


def test_overwrite_replaces_a_folder_only_when_vbgm_wrote_all_of_it(vbgm, work, env):
    args = ["score", "clip.mp4", "--midi", "m.mid", "--stems", "stems", "--end", "1",
            "--progress", "none"]
    assert run(vbgm, args, work, env).returncode == 0
    stems = sorted((work / "stems").glob("*.wav"))
    assert stems and (work / "stems" / ".vbgm-output").is_file()
    (work / "stems" / "notes.txt").write_text("the user's")
    guard = Untouched([work / "clip.mp4", work / "stems" / "notes.txt", *stems], [work])
    line = refused(vbgm, args + ["--overwrite"], work, guard, "did not write (notes.txt)")
    assert "stems" in line
    (work / "stems" / "notes.txt").unlink()
    done = run(vbgm, args + ["--overwrite", "--seed", "1"], work, env)
    assert done.returncode == 0, done.stderr
    assert sorted((work / "stems").glob("*.wav"))
    assert listing(Path(env["TMPDIR"])) == []


@pytest.mark.parametrize("flags", [
    ["--midi", "{v}"], ["--wav", "{v}"], ["--midi", "m.mid", "--report", "{v}"], ["-o", "{v}"],
    ["--midi", "m.mid", "--plot", "{v}"], ["--midi", "m.mid", "--stems", "{v}"],
], ids=["midi", "wav", "report", "mp4", "plot", "stems"])
def test_no_output_may_replace_the_input(vbgm, work, flags):
    guard = Untouched([work / "clip.mp4"], [work])
    args = [f.format(v="clip.mp4") for f in flags]
    refused(vbgm, ["score", "clip.mp4", *args, "--overwrite"], work, guard, "clip.mp4")


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_the_input_is_recognised_by_inode_not_by_name(vbgm, work, link):
    (os.link if link == "hard" else os.symlink)(work / "clip.mp4", work / "alias.mp4")
    guard = Untouched([work / "clip.mp4"], [work])
    refused(vbgm, ["score", "clip.mp4", "-o", "alias.mp4", "--overwrite"], work, guard,
            "is an input")


def test_analyze_never_replaces_its_video(vbgm, work):
    guard = Untouched([work / "clip.mp4"], [work])
    refused(vbgm, ["analyze", "clip.mp4", "-o", "clip.mp4", "--overwrite"], work, guard,
            "is an input")


@pytest.mark.parametrize("flags, needle", [
    (["-o", "o.mp4", "--report", "o.mp4"], "named for two outputs"),
    (["--midi", "m.mid", "--report", "m.mid"], "named for two outputs"),
    (["--midi", "m.mid", "--stems", "S", "--plot", "S/p.png"], "overlap"),
], ids=["mp4+report", "midi+report", "plot-inside-stems"])
def test_two_outputs_never_share_a_file(vbgm, work, flags, needle):
    (work / "S").mkdir()  # an empty folder: --overwrite may replace it
    guard = Untouched([work / "clip.mp4"], [work])
    refused(vbgm, ["score", "clip.mp4", *flags, "--overwrite"], work, guard, needle)


def test_batch_inputs_with_the_same_name_get_their_own_outputs(vbgm, tmp_path, media, env):
    for folder, clip in (("a", "short"), ("b", "other")):
        (tmp_path / folder).mkdir()
        shutil.copy(media[clip], tmp_path / folder / "clip.mp4")
    guard = Untouched([tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"])
    done = run(vbgm, ["batch", "a/clip.mp4", "b/clip.mp4", "-o", "out", "--jobs", "2",
                      "--progress", "none"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    scored = sorted((tmp_path / "out").rglob("*.mp4"))
    assert len(scored) == 2 and sha256(scored[0]) != sha256(scored[1])
    durations = sorted(round(float(ffprobe(p, "format=duration")[0])) for p in scored)
    assert durations == [2, 3]  # each is its own input's copy
    guard.check()


# ---------------------------------------------------------------- data loss: the final step


def test_two_runs_with_the_same_output_never_both_succeed(vbgm, work, env):
    runs = [subprocess.Popen([vbgm, "score", "clip.mp4", "--midi", "same.mid", "--seed",
                              str(seed), "--progress", "none"], cwd=work, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "same.mid" in error_line(loser)
    assert listing(work) == ["clip.mp4", "same.mid"]


def test_an_output_that_appears_meanwhile_is_kept_and_nothing_lands(vbgm, work, env):
    live = Live(vbgm, ["score", "clip.mp4", "--midi", "o.mid", "--wav", "o.wav",
                       "--progress", "jsonl"], work, env)
    live.wait_for_stage("analyze")  # checked for outputs already; writes come last
    (work / "o.wav").write_bytes(b"another program's file")
    guard = Untouched([work / "clip.mp4", work / "o.wav"])
    assert live.finish() == 2
    assert "appeared while vbgm was running" in error_line("".join(live.stderr))
    guard.check()
    assert listing(work) == ["clip.mp4", "o.wav"]  # o.mid did not land without its o.wav


def test_a_bad_soundfont_writes_nothing(vbgm, work, env):
    guard = Untouched([work / "clip.mp4"], [work])
    args = ["score", "clip.mp4", "--midi", "m.mid", "--wav", "m.wav", "--progress", "none"]
    refused(vbgm, args + ["--soundfont", "missing.sf2"], work, guard, "missing.sf2", env)
    (work / "bad.sf2").write_bytes(b"RIFF\x00\x00\x00\x00sfbk cut short")
    guard = Untouched([work / "clip.mp4", work / "bad.sf2"], [work])
    refused(vbgm, args + ["--soundfont", "bad.sf2"], work, guard, "bad.sf2", env)
    assert run(vbgm, args, work, env).returncode == 0  # the same command now just works
    assert listing(Path(env["TMPDIR"])) == []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_render_and_mux_leaves_nothing(vbgm, tmp_path, media, env, signum,
                                                       code):
    """Ctrl-C reaches the whole process group (ffmpeg too); SIGTERM only vbgm, mid-mux."""
    shutil.copy(media["long"], tmp_path / "long.mp4")
    guard = Untouched([tmp_path / "long.mp4"], [tmp_path])
    live = Live(vbgm, ["score", "long.mp4", "-o", "o.mp4", "--wav", "o.wav", "--midi", "o.mid",
                       "--start", "0.5", "--end", "12", "--tempo", "30", "--progress", "jsonl"],
                tmp_path, env)
    live.wait_for_stage("render", 0.5)
    live.wait_for_child("ffmpeg")
    if signum == signal.SIGINT:
        os.killpg(live.proc.pid, signum)
    else:
        os.kill(live.proc.pid, signum)
    assert live.finish() == code
    line = error_line("".join(live.stderr))
    assert ("interrupted" if signum == signal.SIGINT else "terminated") in line
    assert live.group_gone(), "ffmpeg outlived vbgm"
    guard.check()  # no o.mid, no .tmp beside the outputs
    assert listing(Path(env["TMPDIR"])) == []  # no music.wav left in a temp folder


def test_sigkill_leaves_no_final_name_file(vbgm, tmp_path, media, env):
    shutil.copy(media["long"], tmp_path / "long.mp4")
    live = Live(vbgm, ["score", "long.mp4", "-o", "o.mp4", "--wav", "o.wav", "--midi", "o.mid",
                       "--start", "0.5", "--end", "12", "--tempo", "30", "--progress", "jsonl"],
                tmp_path, env)
    live.wait_for_stage("render", 0.5)
    live.wait_for_child("ffmpeg")
    os.killpg(live.proc.pid, signal.SIGKILL)
    assert live.finish() == -signal.SIGKILL
    # the hidden staging folder may stay (nothing can clean up after SIGKILL); no o.* may
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert visible == ["long.mp4", "tmpdir"]


# ---------------------------------------------------------------- tracebacks, wrong results


@pytest.mark.parametrize("clip", ["still", "one_second"])
def test_plot_of_a_clip_without_visual_beats(vbgm, tmp_path, media, clip):
    done = run(vbgm, ["analyze", media[clip], "-o", "r.json", "--plot", "r.png"], tmp_path)
    assert done.returncode == 0, done.stderr
    if clip == "still":
        assert json.loads((tmp_path / "r.json").read_text())["visual_beats"] == []
    done = run(vbgm, ["score", media[clip], "--midi", "m.mid", "--plot", "s.png",
                      "--progress", "none"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.png").stat().st_size > 10_000
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_eval_of_a_clip_without_visual_beats(vbgm, tmp_path, media):
    done = run(vbgm, ["eval", media["still"], "-o", "report", "--quick", "--progress", "none"],
               tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "report" / "report.json").read_text())["videos"][0][
        "visual_beats"] == 0
    assert len(list((tmp_path / "report" / "plots").glob("*.png"))) == 2


def test_negative_seeds_are_valid_and_reproducible(vbgm, work):
    for name in ("a.mid", "b.mid"):
        done = run(vbgm, ["score", "clip.mp4", "--midi", name, "--seed", "-5", "--end", "1",
                          "--progress", "none"], work)
        assert done.returncode == 0, done.stderr
    assert sha256(work / "a.mid") == sha256(work / "b.mid")


def _mount_tmpfs(where, options):
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")


def test_disk_full_while_writing_the_wav(vbgm, work, env):
    full = work / "full"
    _mount_tmpfs(full, "size=256k")
    try:
        guard = Untouched([work / "clip.mp4"], [full])
        line = refused(vbgm, ["score", "clip.mp4", "--wav", "full/o.wav", "--midi",
                              "full/o.mid", "--progress", "none"], work, guard,
                       "No space left on device", env)
        assert "o.wav" in line and ".tmp" not in line
        assert listing(full) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)


@pytest.mark.parametrize("how", ["chattr +i", "read-only mount"])
def test_read_only_folder(vbgm, work, how):
    folder = work / "ro"
    if how == "chattr +i":
        folder.mkdir()
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("cannot set the immutable flag here (not root, or no chattr support)")
    else:
        _mount_tmpfs(folder, "ro,size=64k")
    try:
        guard = Untouched([work / "clip.mp4"], [work])
        refused(vbgm, ["score", "clip.mp4", "--midi", "ro/o.mid", "--progress", "none"], work,
                guard, "not writable")
    finally:
        if how == "chattr +i":
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            subprocess.run(["umount", str(folder)], check=True)


def test_stems_onto_an_existing_file(vbgm, work):
    (work / "S").write_text("the user's")
    guard = Untouched([work / "clip.mp4", work / "S"], [work])
    refused(vbgm, ["score", "clip.mp4", "--midi", "m.mid", "--stems", "S", "--overwrite"], work,
            guard, "not a folder")


def test_ctrl_c_during_prepare(vbgm, tmp_path):
    midi = tmp_path / "midi" / "pop"
    midi.mkdir(parents=True)
    songs = sorted((ROOT / "tests" / "fixtures" / "midi").glob("*.mid"))
    for i in range(60):
        for song in songs:
            shutil.copy(song, midi / f"{i:02d}_{song.name}")
    guard = Untouched([], [tmp_path])
    live = Live(vbgm, ["prepare", "midi", "-o", "data", "--workers", "2"], tmp_path)
    live.wait_for_stderr("prepare:")
    time.sleep(1.0)  # the workers are busy
    assert live.proc.poll() is None, "prepare ended before Ctrl-C"
    os.killpg(live.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    assert live.finish() == 130
    assert "interrupted" in error_line("".join(live.stderr), bar_prefix="prepare:")
    assert live.group_gone(), "a prepare worker outlived the command"
    guard.check()


def test_sigterm_to_batch_ends_all_its_workers(vbgm, tmp_path, media):
    for name in ("a", "b"):
        shutil.copy(media["long"], tmp_path / f"{name}.mp4")
    live = Live(vbgm, ["batch", "a.mp4", "b.mp4", "-o", "out", "--jobs", "2", "--progress",
                       "none"], tmp_path)
    live.wait_for_child()
    time.sleep(3.0)  # the workers are loading the model and analysing
    assert live.proc.poll() is None, "batch ended before SIGTERM"
    os.kill(live.proc.pid, signal.SIGTERM)
    try:
        live.proc.communicate(timeout=60)  # returns once no worker holds stdout any more
    except subprocess.TimeoutExpired:
        pytest.fail("a batch worker kept the output pipe open after SIGTERM")
    assert live.proc.returncode != 0
    assert live.group_gone(), "a batch worker outlived the command"


@pytest.mark.parametrize("name", ["x.txt", "noext", "x.gif"])
def test_output_container_is_checked_before_any_work(vbgm, work, name):
    guard = Untouched([work / "clip.mp4"], [work])
    started = time.monotonic()
    line = refused(vbgm, ["score", "clip.mp4", "-o", name, "--progress", "none"], work, guard,
                   f"{name}: the video output must end in .mp4")
    assert ".tmp" not in line
    assert time.monotonic() - started < 20  # no generation happened first


def test_a_file_name_that_looks_like_an_option(vbgm, work, env):
    shutil.copy(work / "clip.mp4", work / "-dash.mp4")
    done = run(vbgm, ["score", "--output=-scored.mp4", "--progress", "none", "--", "-dash.mp4"],
               work, env)
    assert done.returncode == 0, done.stderr
    assert ffprobe(work / "-scored.mp4", "stream=codec_type") == ["video", "audio"]


def test_a_file_name_that_looks_like_a_protocol(vbgm, work, media, env):
    """``concat:a.mp4|b.mp4`` is a file name, not FFmpeg's concat protocol over a.mp4."""
    shutil.copy(media["other"], work / "a.mp4")   # 3 s: what the protocol would read
    shutil.copy(media["short"], work / "b.mp4")
    name = "concat:a.mp4|b.mp4"
    shutil.copy(media["short"], work / name)      # 2 s: the file named
    done = run(vbgm, ["analyze", name, "-o", "r.json"], work, env)
    assert done.returncode == 0, done.stderr
    assert json.loads((work / "r.json").read_text())["duration_s"] == pytest.approx(2.0, abs=0.05)
    done = run(vbgm, ["score", name, "-o", "s.mp4", "--progress", "none"], work, env)
    assert done.returncode == 0, done.stderr
    assert float(ffprobe(work / "s.mp4", "format=duration")[0]) == pytest.approx(2.0, abs=0.1)


def test_a_corrupt_stream_prints_no_decoder_noise(vbgm, tmp_path, media):
    done = run(vbgm, ["score", media["corrupt"], "--midi", "m.mid", "--progress", "none"],
               tmp_path)
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) <= (1 if done.returncode else 0), done.stderr


@pytest.mark.parametrize("args, code, needle", [
    (["clip.mp4", "--midi", "m.mid", "--instruments", ""], 2, "--instruments"),
    ([".", "--midi", "m.mid"], 2, "is a folder"),
    (["clip.mp4", "--midi", "m.mid", "--start", "0.5", "--end", "0.52"], 2, "range 0.5-0.52 s"),
    (["clip.mp4", "--midi", "m.mid", "--tempo", "abc"], 2, "tempo"),
    # the input is checked before the model is loaded (or even looked for)
    (["missing.mp4", "--midi", "m.mid", "--model", "missing.safetensors"], 2, "missing.mp4"),
], ids=["no-instruments", "folder-input", "range-without-frames", "tempo-abc", "missing-input"])
def test_bad_input_is_one_line_exit_2(vbgm, work, args, code, needle):
    guard = Untouched([work / "clip.mp4"], [work])
    done = run(vbgm, ["score", *args, "--progress", "none"], work)
    assert done.returncode == code, done.stderr
    assert needle in error_line(done.stderr)
    guard.check()


def test_duration_of_record_is_the_streams(vbgm, tmp_path, media):
    """Few, irregular frames: the music is as long as ffprobe says the video is."""
    video_s = float(ffprobe(media["few"], "stream=duration")[0])
    done = run(vbgm, ["analyze", media["few"], "-o", "r.json"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["duration_s"] == pytest.approx(video_s,
                                                                                          abs=1e-3)
    done = run(vbgm, ["score", media["few"], "--wav", "m.wav", "--progress", "none"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert wav_seconds(tmp_path / "m.wav") == pytest.approx(video_s, abs=1e-3)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


# ---------------------------------------------------------------- issue 27: the last cracks


@pytest.fixture(scope="module")
def take(tmp_path_factory, media, vbgm):
    """A previous take of the 2 s clip (a MIDI file vbgm wrote), for re-roll cases."""
    folder = tmp_path_factory.mktemp("take")
    done = run(vbgm, ["score", media["short"], "--midi", "take.mid", "--progress", "none"],
               folder)
    assert done.returncode == 0, done.stderr
    return folder / "take.mid"


@pytest.mark.parametrize("args, needle", [
    (["score", "clip.mp4", "--midi", "m.mid", "--continue-from", "take.mid", "--keep-until",
      "nan", "--seed", "1"], "--keep-until must be a finite number, not 'nan'"),
    (["score", "clip.mp4", "--midi", "m.mid", "--continue-from", "take.mid", "--keep-until",
      "inf", "--seed", "1"], "--keep-until must be a finite number, not 'inf'"),
    (["score", "clip.mp4", "--midi", "m.mid", "--continue-from", "take.mid",
      "--keep-until=-1", "--seed", "1"], "keep-until -1 s keeps nothing"),
    (["score", "clip.mp4", "--midi", "m.mid", "--start", "nan"],
     "--start must be a finite number"),
    (["score", "clip.mp4", "--midi", "m.mid", "--end", "nan"], "--end must be a finite number"),
    (["score", "clip.mp4", "--midi", "m.mid", "--end", "inf"], "--end must be a finite number"),
    (["score", "clip.mp4", "--midi", "m.mid", "--tempo", "nan"], "tempo must be a finite number"),
    (["analyze", "clip.mp4", "-o", "r.json", "--start", "nan"], "--start must be a finite"),
    (["analyze", "clip.mp4", "-o", "r.json", "--end", "inf"], "--end must be a finite"),
    (["analyze", "clip.mp4", "-o", "r.json", "--tempo", "nan"], "--tempo must be a finite"),
    (["batch", "clip.mp4", "-o", "out", "--jobs", "nan"], "--jobs must be a whole number"),
    (["batch", "clip.mp4", "-o", "out", "--control", "nan"], "control degree must be a finite"),
    (["batch", "clip.mp4", "-o", "out", "--loudness", "inf"], "loudness must be a finite"),
    (["eval", "clip.mp4", "-o", "report", "--controls", "0,nan"],
     "--controls must be a finite number, not 'nan'"),
    (["train", "--data", "data", "-o", "run", "--max-minutes", "nan"],
     "--max-minutes must be a finite number"),
], ids=["keep-until-nan", "keep-until-inf", "keep-until-negative", "start-nan", "end-nan",
        "end-inf", "tempo-nan", "analyze-start-nan", "analyze-end-inf", "analyze-tempo-nan",
        "batch-jobs-nan", "batch-control-nan", "batch-loudness-inf", "eval-controls-nan",
        "train-max-minutes-nan"])
def test_nan_and_infinity_are_refused_wherever_a_number_is_read(vbgm, work, take, args,
                                                                 needle):
    """Issue 27: `--keep-until nan` was `ValueError: cannot convert float NaN to integer`,
    `--end nan` scored the whole clip without a word, `--start nan` blamed the duration."""
    shutil.copy(take, work / "take.mid")
    guard = Untouched([work / "clip.mp4", work / "take.mid"], [work])
    started = time.monotonic()
    quiet = ["--progress", "none"] if args[0] in ("score", "batch", "eval") else []
    refused(vbgm, [*args, *quiet], work, guard, needle)
    assert time.monotonic() - started < 30  # refused before any work


@pytest.mark.parametrize("args, needle", [
    (["--music-gain", "100"], "music gain 100 is outside -60..24"),
    (["--original-gain", "nan"], "original gain must be a finite number"),
    (["--duck-depth", "5"], "duck depth 5 is outside -60..0"),
    (["--loudness", "-50"], "loudness -50 LUFS is outside -40..-5 LUFS"),
    (["--loudness=-inf"], "loudness must be a finite number"),
    (["--genre", ""], "genre must be a genre name"),
], ids=["music-gain", "original-gain-nan", "duck-depth", "loudness", "loudness-inf",
        "genre-empty"])
def test_options_out_of_range_are_refused_before_any_work(vbgm, work, args, needle):
    guard = Untouched([work / "clip.mp4"], [work])
    started = time.monotonic()
    refused(vbgm, ["score", "clip.mp4", "-o", "o.mp4", "--progress", "none", *args], work,
            guard, needle)
    assert time.monotonic() - started < 30


def _damaged_model(source, target, metadata=None, nan_tensor=False):
    """A copy of the safetensors model ``source`` with its metadata fields replaced, or the
    first value of its first float16 tensor made NaN (the file format by hand, no torch)."""
    data = Path(source).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    body = bytearray(data[8 + size:])
    header["__metadata__"].update(metadata or {})
    if nan_tensor:
        name = next(k for k, v in sorted(header.items()) if k != "__metadata__"
                    and v["dtype"] == "F16")
        start = header[name]["data_offsets"][0]
        body[start:start + 2] = (0x7E00).to_bytes(2, "little")   # float16 NaN
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(target).write_bytes(len(text).to_bytes(8, "little") + text + bytes(body))
    return target


@pytest.mark.parametrize("damage, needle", [
    ("nan", "damaged weights"),
    ("config", "'config' is not valid JSON"),
    ("extra", "'extra' is not valid JSON"),
    ("genres", "lists 7 genres but has only 5"),
], ids=["nan-weights", "config-cut", "extra-cut", "too-many-genres"])
def test_a_damaged_model_file_is_one_line_exit_3(vbgm, work, damage, needle):
    """Issue 27: NaN weights failed deep in sampling (ValueError), a cut-off config JSON as a
    JSONDecodeError; both are found when the model loads, before any work."""
    bundled = ROOT / "vbgm_core" / "assets" / "model.safetensors"
    size = int.from_bytes(bundled.read_bytes()[:8], "little")
    meta = json.loads(bundled.read_bytes()[8:8 + size])["__metadata__"]
    changes = {"config": {"config": meta["config"][:len(meta["config"]) // 2]},
               "extra": {"extra": meta["extra"][:20]},
               "genres": {"extra": json.dumps({"genres": list("abcdefg")})}}
    _damaged_model(bundled, work / "bad.safetensors", changes.get(damage),
                   nan_tensor=damage == "nan")
    guard = Untouched([work / "clip.mp4", work / "bad.safetensors"], [work])
    done = run(vbgm, ["score", "clip.mp4", "-o", "o.mp4", "--model", "bad.safetensors",
                      "--progress", "none"], work)
    line = error_line(done.stderr)
    assert done.returncode == 3, done.stderr
    assert "bad.safetensors" in line and needle in line, line
    if damage != "nan":   # the header-only reading (`vbgm genres`, batch's checks) as well
        done = run(vbgm, ["genres", "--model", "bad.safetensors"], work)
        assert done.returncode == 3 and needle in error_line(done.stderr), done.stderr
    guard.check()


def test_long_output_names(vbgm, work, env):
    """Issue 27: a 296-byte name was `OSError: [Errno 36] File name too long`, after the
    work; legal names of 246-255 bytes failed too (the temporary's name added 14)."""
    guard = Untouched([work / "clip.mp4"], [work])
    started = time.monotonic()
    refused(vbgm, ["score", "clip.mp4", "-o", "a" * 292 + ".mp4", "--progress", "none"],
            work, guard, "the name is 296 bytes long; the file system allows 255")
    assert time.monotonic() - started < 20
    for command in (["batch", "clip.mp4", "-o", "z" * 300], ["analyze", "clip.mp4", "-o",
                                                            "z" * 295 + ".json"]):
        refused(vbgm, command, work, guard, "bytes long; the file system allows 255")
    names = {"-o": "d" * 251 + ".mp4", "--wav": "c" * 246 + ".wav", "--midi": "b" * 242 + ".mid"}
    args = ["score", "clip.mp4", *(x for flag, name in names.items() for x in (flag, name)),
            "--progress", "none"]
    done = run(vbgm, args, work, env)
    assert done.returncode == 0, done.stderr
    assert sorted(listing(work)) == sorted(["clip.mp4", *names.values()])
    done = run(vbgm, args + ["--overwrite", "--seed", "1"], work, env)  # replaced as well
    assert done.returncode == 0, done.stderr
    assert sorted(listing(work)) == sorted(["clip.mp4", *names.values()])
    assert listing(Path(env["TMPDIR"])) == []


def test_an_output_path_too_long_for_the_system(vbgm, work):
    """Under 25 nested folders of 200 bytes (made one at a time, relative to the last): the
    path is 5,000 bytes, past the system's 4,095; refused before any work, nothing written."""
    name = "f" * 200
    fd = os.open(work, os.O_RDONLY)
    try:
        for _ in range(25):
            os.mkdir(name, dir_fd=fd)
            fd, parent = os.open(name, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
    finally:
        os.close(fd)
    deep = "/".join([name] * 25)
    try:
        guard = Untouched([work / "clip.mp4"], [])
        before = sorted(os.listdir(work))
        for flags in (["-o", f"{deep}/o.mp4"], ["--midi", f"{deep}/o.mid"],
                      ["--midi", "m.mid", "--stems", f"{deep}/S"]):
            started = time.monotonic()
            refused(vbgm, ["score", "clip.mp4", *flags, "--progress", "none"], work, guard,
                    "the path is too long")
            assert time.monotonic() - started < 20
            assert sorted(os.listdir(work)) == before
            written = [f for _, _, files, _ in os.fwalk(work / name) for f in files]
            assert written == []
    finally:
        shutil.rmtree(work / name)


@pytest.mark.parametrize("args, needle", [
    (["analyze", "clip.mp4", "-o", "r.mp4"], "r.mp4: the rhythm JSON must end in .json"),
    (["score", "clip.mp4", "--midi", "m.mid", "--report", "r.png"],
     "r.png: the report must end in .json"),
    (["batch", "clip.mp4", "-o", "out", "--summary", "s.txt"], "s.txt: the summary is JSON"),
    (["score", "clip.mp4", "-o", "o.mp4/"], "o.mp4/: names a folder"),
    (["score", "clip.mp4", "--midi", "m.mid/"], "m.mid/: names a folder"),
    (["analyze", "clip.mp4", "-o", "r.json/"], "r.json/: names a folder"),
], ids=["analyze-json-as-mp4", "report-as-png", "summary-as-txt", "mp4-slash", "midi-slash",
        "analyze-slash"])
def test_an_output_name_says_what_is_written(vbgm, work, args, needle):
    """Issue 27: `analyze -o r.mp4` and `--report r.png` wrote JSON under those names;
    `-o o.mp4/` (a folder's name) was read as o.mp4."""
    guard = Untouched([work / "clip.mp4"], [work])
    started = time.monotonic()
    refused(vbgm, [*args, *(["--progress", "none"] if args[0] != "analyze" else [])], work,
            guard, needle)
    assert time.monotonic() - started < 20


def test_a_dangling_symlink_as_output(vbgm, work, env):
    """Issue 27: all the work was done, then "appeared while vbgm was running (another
    run?)". Now refused before any work; --overwrite replaces the link, never its target."""
    os.symlink("elsewhere/target.mp4", work / "o.mp4")
    guard = Untouched([work / "clip.mp4"], [work])
    started = time.monotonic()
    refused(vbgm, ["score", "clip.mp4", "-o", "o.mp4", "--progress", "none"], work, guard,
            "o.mp4: is a dangling symbolic link (to elsewhere/target.mp4); remove it, or use "
            "--overwrite")
    assert time.monotonic() - started < 20
    assert os.readlink(work / "o.mp4") == "elsewhere/target.mp4"
    done = run(vbgm, ["score", "clip.mp4", "-o", "o.mp4", "--overwrite", "--progress", "none"],
               work, env)
    assert done.returncode == 0, done.stderr
    assert not (work / "o.mp4").is_symlink() and (work / "o.mp4").is_file()
    assert not (work / "elsewhere").exists()
    assert ffprobe(work / "o.mp4", "stream=codec_type") == ["video", "audio"]


@pytest.mark.parametrize("command", ["score", "analyze"])
def test_an_end_past_the_video_is_said(vbgm, tmp_path, media, command):
    """Issue 27: `--end 10` on a 3 s clip was cut to 3 s without a word. Now a warning line
    on stderr (the run goes on: an editor asking up to 10 s means "to the end"), and the
    report holds the range scored."""
    shutil.copy(media["other"], tmp_path / "clip.mp4")
    args = (["score", "clip.mp4", "--midi", "m.mid", "--report", "r.json", "--progress",
             "none"] if command == "score" else ["analyze", "clip.mp4", "-o", "r.json"])
    done = run(vbgm, [*args, "--start", "0.5", "--end", "10"], tmp_path)
    assert done.returncode == 0, done.stderr
    line = error_line(done.stderr, bar_prefix="analyze")
    assert line.startswith(f"vbgm {command}: warning: clip.mp4: end 10 s is past the end of "
                           "the video (3.000 s); the range is 0.5-3.000 s"), line
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["start_s"] == 0.5 and report["duration_s"] == pytest.approx(2.5, abs=0.01)
    done = run(vbgm, [*args, "--end", "2", "--overwrite"], tmp_path)   # inside: no word
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr


def test_stems_alone_are_an_output(vbgm, work, env):
    done = run(vbgm, ["score", "clip.mp4", "--stems", "S", "--report", "r.json", "--progress",
                      "none"], work, env)
    assert done.returncode == 0, done.stderr
    assert sorted((work / "S").glob("*.wav")) and (work / "S" / ".vbgm-output").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["S", "clip.mp4", "r.json"]
    # the stems are synthesized from the MIDI: no main mix is made and mastered for nothing
    stages = json.loads((work / "r.json").read_text())["timings"]["stages"]
    assert {"analyze", "generate"} <= {s["name"] for s in stages}
    assert not {"synthesize", "master"} & {s["name"] for s in stages}


def test_batch_jobs_are_capped_at_the_clips(vbgm, tmp_path, media):
    for name, clip in (("a", "short"), ("b", "one_second")):
        shutil.copy(media[clip], tmp_path / f"{name}.mp4")
    live = Live(vbgm, ["batch", "a.mp4", "b.mp4", "-o", "out", "--jobs", "1000",
                       "--progress", "none"], tmp_path)
    most = 0
    while live.proc.poll() is None:   # the pool's worker processes, as they come
        workers = [n for n in live.children() if n not in ("ffmpeg", "ffprobe")]
        most = max(most, len(workers))
        time.sleep(0.05)
    assert live.finish() == 0, "".join(live.stderr)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["scored"] == 2
    assert 1 <= most <= 2, most


def test_sigterm_to_batch_exits_143(vbgm, tmp_path, media):
    for name in ("a", "b"):
        shutil.copy(media["long"], tmp_path / f"{name}.mp4")
    live = Live(vbgm, ["batch", "a.mp4", "b.mp4", "-o", "out", "--jobs", "2", "--progress",
                       "none"], tmp_path)
    live.wait_for_child()
    time.sleep(2.0)
    assert live.proc.poll() is None, "batch ended before SIGTERM"
    os.kill(live.proc.pid, signal.SIGTERM)
    assert live.finish(timeout=60) == 143
    assert "terminated" in error_line("".join(live.stderr))
    assert live.group_gone(), "a batch worker outlived the command"


def test_disk_full_while_muxing_is_an_error_not_wrote(vbgm, work, env):
    """Issue 27: with -o on a nearly full disk ffmpeg stopped part-way, exited 0, and vbgm said
    "wrote full/o.mp4" of a file cut at the disk's size without its moov atom. Every media
    output is verified (ffprobe: its streams, their durations) before it takes its name."""
    full = work / "full"
    size_k = max(64, (work / "clip.mp4").stat().st_size // 2 // 4096 * 4)  # MIDI fits, mp4 not
    _mount_tmpfs(full, f"size={size_k}k")
    try:
        guard = Untouched([work / "clip.mp4"], [full])
        done = run(vbgm, ["score", "clip.mp4", "-o", "full/o.mp4", "--midi", "full/o.mid",
                          "--progress", "none"], work, env)
        line = error_line(done.stderr)
        assert done.returncode in (2, 4), (done.returncode, done.stderr)
        assert "wrote" not in done.stdout and "o.mp4" in line and ".tmp" not in line, line
        assert listing(full) == []
        assert listing(Path(env["TMPDIR"])) == []     # no temporary audio left behind
        guard.check()
    finally:
        subprocess.run(["umount", str(full)], check=True)
