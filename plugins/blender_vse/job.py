"""Runs `vbgm score EDIT.json --progress jsonl` out of process and follows it without blocking.

Blender's bundled Python has no torch, so the add-on never imports the core: it starts the
user's own `vbgm` command and reads its JSON-lines progress. This module must not import bpy,
so that it is testable with any Python against the real CLI.
"""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

ENV_VAR = "VBGM_EXECUTABLE"  # overrides PATH lookup when the preference is blank

EXIT_CANCELLED = 130


class JobError(Exception):
    """The job could not start or run; the message is one line for a Blender report."""


def resolve_executable(configured=""):
    """Find the `vbgm` command: the preference, then ``$VBGM_EXECUTABLE``, then PATH.

    Args:
        configured: path set in the add-on preferences ("" = not set).

    Returns:
        Absolute path of the command.

    Raises:
        JobError: the configured path does not exist, or no `vbgm` is found at all.
    """
    for source, candidate in (("add-on preference", configured), (ENV_VAR, os.environ.get(ENV_VAR, ""))):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path.resolve())
            raise JobError(f"vbgm command not found: {path} (from the {source}); "
                           "point it at the vbgm in your Python environment")
    found = shutil.which("vbgm")
    if found:
        return found
    raise JobError("vbgm command not found on PATH: install vbgm in a Python environment and set "
                   "its path in Preferences > Add-ons > vbgm")


def list_names(executable, what, timeout=120):
    """Names the installed model offers: ``what`` is "genres" or "instruments".

    Raises:
        JobError: the command failed or timed out (message = its last stderr line).
    """
    try:
        done = subprocess.run([executable, what], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise JobError(f"vbgm {what}: {e}") from None
    if done.returncode != 0:
        raise JobError(_last_line(done.stderr) or f"vbgm {what} exited with code {done.returncode}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def score_command(executable, edit, wav, midi, *, genre=None, instruments=(), control=0.7,
                  tempo=None, seed=0, key="auto", mode="auto", min_density=3, repetition=1.0,
                  loudness=-14.0,
                  duck_depth_db=None, duck_attack_s=None, duck_release_s=None, report=None,
                  continue_from=None, keep_until=None):
    """The `vbgm score` argument list (docs/DESIGN.md, CLI) for an edit list.

    Args:
        executable: the `vbgm` command.
        edit: the edit list (JSON, see edit_list.py) to score whole.
        wav, midi: outputs to create (must not exist).
        genre: genre name, or None for the model's default.
        instruments: instrument names; empty = the model's default.
        control: control degree C in [0, 1].
        tempo: BPM, or None for automatic.
        seed: random seed.
        key, mode: the piece's key ("auto" or a pitch class) and mode ("auto", major, minor).
        min_density: fewest onsets in any bar.
        repetition: how much the music repeats itself (a groove, returning phrases), 0..1.
        loudness: integrated loudness of the music, LUFS.
        duck_depth_db: None, or duck the music by this much (dB, <= 0) under the edit's
            speech: `--mix duck`, and the "done" event's report then carries the music's
            level as ``gain_db`` (see :func:`gain_points`). The WAV stays the music itself.
        duck_attack_s, duck_release_s: with ``duck_depth_db``, the ramps down and back up
            (seconds; None = the core's default).
        report: the JSON report to write beside the music (tempo, bars; None = none).
        continue_from, keep_until: re-roll: a previous take's MIDI and the seconds (from the
            scored span's start) to keep it until; the core keeps its notes up to the first
            bar line at or after ``keep_until`` bit for bit and composes the rest with
            ``seed``. The take's tempo, key and mode carry over. Both or neither.

    Returns:
        list of str.
    """
    if (continue_from is None) != (keep_until is None):
        raise ValueError("a re-roll needs both continue_from and keep_until")
    argv = [str(executable), "score", "--wav", str(wav), "--midi", str(midi),
            "--control", f"{control:g}", "--tempo", "auto" if tempo is None else f"{tempo:g}",
            "--seed", str(int(seed)), "--key", key, "--mode", mode,
            "--min-density", str(int(min_density)), "--repetition", f"{repetition:g}",
            "--loudness", f"{loudness:g}",
            "--progress", "jsonl"]
    if genre:
        argv += ["--genre", genre]
    if instruments:
        argv += ["--instruments", ",".join(instruments)]
    if duck_depth_db is not None:
        argv += ["--mix", "duck", "--duck-depth", f"{duck_depth_db:g}"]
        for flag, value in (("--duck-attack", duck_attack_s), ("--duck-release", duck_release_s)):
            if value is not None:
                argv += [flag, f"{value:g}"]
    if report is not None:
        argv += ["--report", str(report)]
    if continue_from is not None:
        # repr: every digit, so that a playhead on a bar line does not round past it
        argv += ["--continue-from", str(continue_from), "--keep-until", repr(float(keep_until))]
    return argv + ["--", str(edit)]   # "--": a file name that starts with "-" is not an option


def gain_points(done):
    """The music's level from a "done" event: ``[(t_s, dB), ...]`` from the scored span's start.

    Raises:
        JobError: the report has no ``gain_db`` (a vbgm without ducking).
    """
    points = ((done or {}).get("report") or {}).get("gain_db")
    if not points:
        raise JobError("vbgm score reported no gain curve (gain_db): update vbgm for ducking")
    return [(float(t), float(db)) for t, db in points]


def kept_s(done):
    """Where a re-roll's new music starts (seconds from the span's start), from its "done"
    event; None when the report does not say."""
    kept = ((done or {}).get("report") or {}).get("continued_from") or {}
    return float(kept["kept_s"]) if "kept_s" in kept else None


def take_stem(path):
    """The stem shared by a take's files: ``bikes_rock`` for ``…/bikes_rock_take3.mid``."""
    return re.sub(r"_take\d+$", "", Path(path).stem)


def take_paths(folder, stem):
    """The first free take: ``folder/stem_takeN`` ``.wav``, ``.mid``, ``.json`` (the edit
    list) and ``.report.json`` (the core's report: tempo, bars), none existing.

    Returns:
        (wav Path, midi Path, edit list Path, report Path, take number).
    """
    folder = Path(folder)
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._") or "score"
    take = 1
    while True:
        paths = [folder / f"{stem}_take{take}{suffix}"
                 for suffix in (".wav", ".mid", ".json", ".report.json")]
        if not any(p.exists() for p in paths):
            return (*paths, take)
        take += 1


class ScoreJob:
    """One `vbgm score` subprocess, polled from a timer (or waited on).

    ``state`` goes pending → running → done | error | cancelled. After each :meth:`poll`,
    ``stage``/``fraction`` hold the latest progress, ``result`` the "done" event and
    ``message`` the error. Cancelling or failing removes the outputs it was asked to write
    (and the core's temporaries beside them), never a file that existed before.

    Args:
        argv: the command (see :func:`score_command`).
        outputs: files the command will write.
    """

    def __init__(self, argv, outputs=()):
        self.argv = [str(a) for a in argv]
        self.outputs = [Path(p) for p in outputs]
        self._preexisting = {p for p in self.outputs if p.exists()}
        self._staging_before = {d for d in self._staging_dirs()}
        self.state = "pending"
        self.stage = ""
        self.fraction = 0.0
        # Each stage's share of the whole job: announced by vbgm's first JSON line
        # (vbgm_core/progress.py names the stages; the add-on keeps no copy).
        self.stages = {}
        self.result = None
        self.message = ""
        self.returncode = None
        self._events = queue.Queue()
        self._stderr = []
        self._proc = None
        self._threads = []
        self._cancel_requested = False

    @property
    def finished(self):
        return self.state in ("done", "error", "cancelled")

    @property
    def progress(self):
        """Whole-job progress in [0, 1], stages weighted as vbgm announced them."""
        if self.state == "done":
            return 1.0
        total = 0.0
        for stage, weight in self.stages.items():
            if stage == self.stage:
                return min(1.0, total + weight * self.fraction)
            total += weight
        return 0.0

    def start(self):
        """Start the subprocess.

        Raises:
            JobError: the command cannot be started.
        """
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # own process group: cancel reaches ffmpeg too
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, bufsize=1, env=env,
                                          **kwargs)
        except OSError as e:
            self.state, self.message = "error", f"cannot run {self.argv[0]}: {e.strerror or e}"
            raise JobError(self.message) from None
        self.state = "running"
        # Reader threads: pipes block, and Windows has no non-blocking pipe reads.
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def _read_stdout(self):
        for line in self._proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue  # a library's stray print, not an event
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._events.put(event)

    def _read_stderr(self):
        for line in self._proc.stderr:
            self._stderr.append(line.rstrip())
            del self._stderr[:-50]

    def poll(self):
        """Take the events that arrived since the last call; settle the state on exit.

        Returns:
            list of event dicts, oldest first.
        """
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for event in events:
            kind = event.get("event")
            if kind == "start":
                self.stages = {str(k): float(v) for k, v in event.get("stages", {}).items()}
            elif kind == "progress":
                self.stage = str(event.get("stage", ""))
                self.fraction = float(event.get("fraction", 0.0))
            elif kind == "done":
                self.result = event
            elif kind == "error":
                self.message = str(event.get("message", ""))
        if self.state == "running" and self._proc.poll() is not None \
                and not any(t.is_alive() for t in self._threads):
            if self._events.empty():
                self._settle()
            else:
                events += self.poll()
        return events

    def _settle(self):
        self.returncode = self._proc.returncode
        if self._cancel_requested or self.returncode == EXIT_CANCELLED:
            self.state, self.message = "cancelled", "cancelled"
        elif self.returncode == 0 and self.result is not None:
            missing = [p for p in self.outputs if not p.is_file()]
            if missing:
                self.state, self.message = "error", f"vbgm score did not write {missing[0]}"
            else:
                self.state = "done"
                self.stage, self.fraction = "render", 1.0
        else:
            self.state = "error"
            self.message = (self.message or _last_line("\n".join(self._stderr))
                            or f"vbgm score exited with code {self.returncode}")
        if self.state != "done":
            self._remove_partial_files()

    def wait(self, timeout=None, interval=0.05, on_event=None):
        """Block until the job ends (the synchronous path: scripts, tests, background mode).

        Args:
            timeout: seconds; on expiry the job is cancelled.
            interval: polling period in seconds.
            on_event: optional callable(event dict) for each event.

        Returns:
            The final state.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                self.state, self.message = "error", f"vbgm score timed out after {timeout:g} s"
                break
            time.sleep(interval)
        return self.state

    def cancel(self, grace_s=3.0):
        """Stop the subprocess (its whole process group on POSIX) and remove partial files.

        Blocks for at most ``grace_s`` before force-killing.
        """
        if self._proc is None or self.finished:
            return
        self._cancel_requested = True
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM if os.name == "posix" else None)
            try:
                self._proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if os.name == "posix" else None, force=True)
                self._proc.wait()
        for t in self._threads:
            t.join(1.0)
        self.poll()

    def _signal(self, sig, force=False):
        try:
            if os.name == "posix":
                os.killpg(self._proc.pid, sig)
            elif force:
                self._proc.kill()
            else:
                self._proc.terminate()
        except (ProcessLookupError, PermissionError):
            pass

    def _remove_partial_files(self):
        for path in self.outputs:
            if path in self._preexisting:
                continue
            if path.exists():
                path.unlink()
        # A vbgm killed outright leaves its staging folder (the outputs' temporaries) behind;
        # only the ones that appeared during this job are its.
        for folder in self._staging_dirs() - self._staging_before:
            shutil.rmtree(folder, ignore_errors=True)

    def _staging_dirs(self):
        """vbgm's staging folders beside the outputs (vbgm_core/files.py names them
        ".vbgm-<random>.tmp")."""
        return {d for parent in {p.parent for p in self.outputs} if parent.is_dir()
                for d in parent.glob(".vbgm-*.tmp") if d.is_dir()}


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""

