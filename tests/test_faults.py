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
