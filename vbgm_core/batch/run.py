"""`vbgm batch`: score many videos on a local process pool or a Ray cluster.

One scheduler, two engines. The engine only runs jobs (``score_clip``, below, in a worker that
loads the model once); everything a user can see is decided here, in the driver, the same way
for both engines:

- Output names (``plan_outputs``) are fixed before any job starts: ``OUT/<stem>.mp4|.mid|.json``
  when the inputs' names are unique, else the inputs' folder structure below their common folder
  (``a/clip.mp4``, ``b/clip.mp4`` → ``OUT/a/clip.*``, ``OUT/b/clip.*``), then a ``-2`` suffix
  for what still collides. An output name never equals an input's path or the summary's.
- Each clip's seed is ``clip_seed(batch seed, file name)``: the same clip gets the same music
  whatever the engine, the worker, the order or the other clips of the batch.
- A worker writes into a hidden staging folder inside OUT; the driver then lands the clip's
  three files under their final names together (hard link, so a file that appeared meanwhile is
  never replaced without ``overwrite``), or none of them. The staging folder is removed at the
  end, also on Ctrl-C and SIGTERM (workers are killed first).
- One failure never stops the others; a lost worker (a killed process or Ray actor) is
  replaced and its clip retried, at most ``max_attempts`` times in all.
- A summary JSON (per clip: status, seconds, error, attempts, seed, outputs) is written at the
  end, for a finished or an interrupted batch.
"""

import collections
import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from ..errors import InputError, VbgmError

OUTPUTS = {"mp4": ".mp4", "midi": ".mid", "report": ".json"}   # kind → suffix of each clip's files
STAGED = {"mp4": "scored.mp4", "midi": "music.mid", "report": "report.json"}
SUMMARY_NAME = "summary.json"
MAX_ATTEMPTS = 3      # a clip whose worker is lost is retried; after 3 lost workers it fails


# ---------------------------------------------------------------------------------------------
# What the driver decides before any job starts


def clip_seed(batch_seed, video):
    """The seed a clip is scored with: from the batch seed and the clip's file name only.

    Not its position or completion order, nor its folder: the same clip gives the same music
    on any engine and worker, alone or among others. (A 31-bit non-negative integer, so that
    ``vbgm score CLIP --seed <it>`` reproduces the clip; each clip's report records it.)
    """
    digest = hashlib.sha256(f"vbgm-batch:{int(batch_seed)}:{Path(video).name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _key(path):
    """A path as a comparable name: its folder resolved, the name case-folded (a case-insensitive
    file system holds ``Clip.mp4`` and ``clip.mp4`` in one place)."""
    path = Path(path)
    return (os.path.realpath(path.parent), path.name.casefold())


def plan_outputs(videos, outdir, reserved=()):
    """Unique output base names (relative to ``outdir``, '/'-separated, no suffix), in order.

    Args:
        videos: the input paths.
        outdir: the output folder.
        reserved: more paths no output may take (the summary file).

    Raises:
        InputError: the same file given twice.
    """
    paths = [Path(os.path.abspath(v)) for v in videos]
    seen = {}
    for v, p in zip(videos, paths):
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(f"{v}: given twice (also as {seen[real]})")
        seen[real] = v
    stems = [p.stem.casefold() for p in paths]
    if len(set(stems)) == len(stems):
        bases = [p.stem for p in paths]
    else:  # keep the inputs' folder structure below their common folder
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        bases = [p.relative_to(root).with_suffix("").as_posix() for p in paths]
    outdir = Path(outdir)
    taken = {_key(p) for p in list(paths) + [Path(r) for r in reserved]}
    names = []
    for base in bases:
        name, k = base, 1
        while any(_key(outdir / f"{name}{s}") in taken for s in OUTPUTS.values()):
            k += 1
            name = f"{base}-{k}"
        taken.update(_key(outdir / f"{name}{s}") for s in OUTPUTS.values())
        names.append(name)
    return names


class Clip:
    """One input of a batch and what became of it (a row of the summary)."""

    def __init__(self, index, video, name, seed, outdir):
        self.index, self.video, self.name, self.seed = index, str(video), name, seed
        self.outputs = {kind: str(Path(outdir) / f"{name}{s}") for kind, s in OUTPUTS.items()}
        self.status, self.error, self.seconds, self.attempts, self.worker = (
            "pending", None, None, 0, None)

    @property
    def ok(self):
        return self.status == "ok"

    def row(self):
        return {"video": self.video, "name": self.name, "status": self.status,
                "seconds": None if self.seconds is None else round(self.seconds, 3),
                "error": self.error, "attempts": self.attempts, "worker": self.worker,
                "seed": self.seed, "outputs": self.outputs if self.ok else None}


# The options travel as ``score_video``'s keyword arguments (a dict: ``options`` = a
# ``ScoreOptions``, plus ``model``, ``soundfont``...), passed through untouched but for
# the seed. Only the three helpers below know where the seed and the model are.


def batch_seed(kwargs):
    """The batch's seed: ``kwargs["options"].seed``, else ``kwargs["seed"]``, else 0."""
    options = kwargs.get("options")
    if options is not None:
        return int(options.seed)
    return int(kwargs.get("seed") or 0)


def _with_seed(kwargs, seed):
    """The keyword arguments with another seed (the caller's left untouched)."""
    options = kwargs.get("options")
    if options is not None:
        import dataclasses

        return {**kwargs, "options": dataclasses.replace(options, seed=seed)}
    return {**kwargs, "seed": seed}


def _score_options(kwargs):
    """The ScoreOptions of the keyword arguments (built from loose option names if need be)."""
    import dataclasses

    from ..options import ScoreOptions

    if kwargs.get("options") is not None:
        return kwargs["options"]
    names = {f.name for f in dataclasses.fields(ScoreOptions)}
    return ScoreOptions.from_kwargs(**{k: v for k, v in kwargs.items() if k in names})


def check_options(kwargs):
    """What the driver checks before any worker starts, without loading torch: the model file
    and its genres (from its header), the options, the SoundFont. Raises VbgmError."""
    from ..scorer import model_genres

    genres = model_genres(kwargs.get("model"))
    options = _score_options(kwargs)
    if options.genre is not None and options.genre not in genres:
        raise InputError(f"unknown genre {options.genre!r}; the model knows: {', '.join(genres)}")
    soundfont = kwargs.get("soundfont")
    if soundfont and not Path(soundfont).is_file():
        raise InputError(f"{soundfont}: SoundFont not found")


# ---------------------------------------------------------------------------------------------
# What a worker runs (a local pool process or a Ray actor); never raises

_SCORERS = {}   # model path → Scorer: each worker process loads a model once


def worker_scorer(kwargs):
    """This worker's Scorer for the batch's model (loaded on first use, then kept)."""
    from ..scorer import Scorer

    key = str(kwargs.get("model") or "")
    if key not in _SCORERS:
        _SCORERS[key] = Scorer.from_pretrained(kwargs.get("model"))
    return _SCORERS[key]


def preflight(kwargs):
    """Load the model and check the options against it (a Ray actor, before its first clip)."""
    worker_scorer(kwargs).resolve(_score_options(kwargs))


def _one_line(text):
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def score_clip(job):
    """Score one video into job["dir"] (a fresh staging folder): the clip's mp4, MIDI and JSON
    report under the names of ``STAGED``. Returns {"ok", "error", "seconds", "files"}."""
    t0 = time.perf_counter()
    folder = Path(job["dir"])
    files = {kind: str(folder / name) for kind, name in STAGED.items()}
    saved_tempdir = tempfile.tempdir
    try:
        import cv2

        from ..api import score_video

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # the error says it
        (folder / "tmp").mkdir(parents=True)
        tempfile.tempdir = str(folder / "tmp")  # the driver removes it, also after a kill
        kwargs = _with_seed(job["options"], job["seed"])
        result = score_video(job["video"], out_video=files["mp4"], out_midi=files["midi"],
                             scorer=worker_scorer(kwargs), **kwargs)
        Path(files["report"]).write_text(json.dumps(result.report, indent=1))
        error = None
    except VbgmError as e:
        error = _one_line(e)
    except Exception as e:  # a bug on one video is reported like an error, the batch goes on
        error = f"{job['video']}: {type(e).__name__}: {_one_line(e)}"
    finally:
        tempfile.tempdir = saved_tempdir
    return {"ok": error is None, "error": error, "seconds": time.perf_counter() - t0,
            "files": files if error is None else None}


# ---------------------------------------------------------------------------------------------
# Landing a clip's files under their final names: together or not at all


def _land(staged, finals, overwrite):
    """Move ``staged[kind]`` to ``finals[kind]`` for every kind, all or none.

    Without ``overwrite`` an existing final name is refused, checked once before and then by the
    hard link itself (a file that appeared meanwhile is not replaced)."""
    pairs = [(Path(staged[k]), Path(finals[k])) for k in finals]
    if not overwrite:
        for _, final in pairs:
            if final.exists() or final.is_symlink():
                raise InputError(f"{final}: output exists (use --overwrite to replace it)")
    landed = []
    try:
        for tmp, final in pairs:
            final.parent.mkdir(parents=True, exist_ok=True)
            if overwrite:
                os.replace(tmp, final)
            else:
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise InputError(f"{final}: output exists (use --overwrite to replace it)")
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                        raise
                    if final.exists():  # no hard links here: check, then rename
                        raise InputError(f"{final}: output exists (use --overwrite to replace it)")
                    os.replace(tmp, final)
                else:
                    tmp.unlink()
            landed.append(final)
    except BaseException:
        for final in landed:
            final.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Progress: a bar, JSON lines, or nothing


class Reporter:
    """Batch events as a tqdm bar on stderr (``"bar"``), JSON lines on stdout (``"jsonl"``),
    nothing (``"none"``/None), or a callable(event dict)."""

    def __init__(self, mode, total):
        self.mode, self.total, self.done, self.bar = mode, total, 0, None
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="batch", unit="video", file=sys.stderr)

    def __call__(self, **event):
        if callable(self.mode):
            self.mode(event)
        elif self.mode == "jsonl":
            print(json.dumps(event), flush=True)
        if event["event"] == "clip":
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
            elif self.mode == "jsonl":
                print(json.dumps({"event": "progress", "stage": "batch",
                                  "fraction": round(self.done / max(self.total, 1), 4)}),
                      flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# Engines: run jobs on workers. Both have: start(), idle() → free ready workers,
# submit(worker, job) → handle, wait(timeout) → [(handle, outcome)], close(kill).


class WorkerLost(Exception):
    """The worker running a job died (killed process or actor); the job may be retried."""


def _init_local_worker(parent_pid):
    """Pool worker set-up: its own process group (the parent ends it, with the ffmpeg it runs,
    by one signal), death with the parent, and Ctrl-C left to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    try:  # Linux: the kernel sends SIGKILL to this worker when the parent dies (even by SIGKILL)
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


class LocalEngine:
    """A process pool on this machine; each process loads the model once."""

    name = "local"

    def __init__(self, jobs=None):
        self.jobs = max(1, int(jobs or 1))
        self.pool, self.busy = None, {}   # busy: future → worker name

    def _pool(self):
        if self.pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(max_workers=self.jobs, initializer=_init_local_worker,
                                            initargs=(os.getpid(),))
        return self.pool

    def start(self, options):
        self._pool()

    def idle(self):
        used = set(self.busy.values())
        return [f"local-{i}" for i in range(self.jobs) if f"local-{i}" not in used]

    def submit(self, worker, job):
        future = self._pool().submit(score_clip, job)
        self.busy[future] = worker
        return future

    def wait(self, timeout):
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait_futures(list(self.busy), timeout=timeout, return_when=FIRST_COMPLETED)
        out, broken = [], False
        for future in done:
            del self.busy[future]
            try:
                out.append((future, future.result()))
            except BrokenProcessPool as e:
                broken = True
                out.append((future, WorkerLost(f"worker process died ({e})")))
        if broken:  # the pool is unusable: end it, a new one starts on the next submit
            self._kill()
        return out

    def _kill(self):
        if self.pool is None:
            return
        for pid in list(getattr(self.pool, "_processes", None) or {}):
            for kill in (os.killpg, os.kill):  # the worker's group (it and its ffmpeg), else it
                try:
                    kill(pid, signal.SIGKILL)
                    break
                except (ProcessLookupError, PermissionError):
                    continue
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None

    def close(self, kill=False):
        if kill:
            self._kill()
        elif self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def _check_ray_address(address):
    """A HOST:PORT address must answer (Ray's own connect retries for minutes); a loopback one
    means a single-machine Ray bound to 127.0.0.1, which Ray reaches only with its cluster mode
    off (else it rewrites 127.0.0.1 to the machine's network address). Before ``import ray``."""
    import ipaddress
    import socket

    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except (OSError, ValueError) as e:
        raise InputError(f"--address {address}: no Ray head answers there ({e})") from None
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host.strip("[]"))).is_loopback
    except (OSError, ValueError):
        loopback = False
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def make_engine(engine, jobs=None, address=None):
    if engine == "local":
        if address:
            raise InputError("--address is for --engine ray")
        return LocalEngine(jobs)
    if engine == "ray":
        _check_ray_address(address)
        try:
            from .ray_engine import RayEngine
        except ModuleNotFoundError as e:
            if e.name != "ray":
                raise
            raise InputError("--engine ray needs Ray: pip install 'vbgm[ray]'") from e
        return RayEngine(jobs, address)
    raise InputError(f"unknown engine {engine!r}; choose local or ray")


# ---------------------------------------------------------------------------------------------
# The batch


class BatchResult:
    """What ``run_batch`` did: ``clips`` (Clip, in input order), ``summary_path``, ``summary``."""

    def __init__(self, clips, summary_path, summary):
        self.clips, self.summary_path, self.summary = clips, summary_path, summary

    @property
    def rows(self):
        return [c.row() for c in self.clips]

    @property
    def failed(self):
        return sum(not c.ok for c in self.clips)


def run_batch(videos, outdir, options, jobs=None, *, engine="local", address=None,
              progress=None, overwrite=False, summary=None, max_attempts=MAX_ATTEMPTS):
    """Score every video into ``outdir``; one failure never stops the others.

    Args:
        videos: video paths (on a Ray cluster: paths every node reads, e.g. a shared folder).
        outdir: output folder (created; on a cluster it must be shared too).
        options: ``score_video``'s keyword arguments shared by all videos (a dict:
            ``options`` = a ScoreOptions, ``model``, ``soundfont``...); its seed is
            the batch seed, each clip is scored with ``clip_seed(seed, file name)``.
        jobs: workers (processes, or Ray actors); default 1 locally, the cluster's CPUs on Ray.
        engine: ``"local"`` or ``"ray"``.
        address: the Ray cluster (``auto``, ``HOST:PORT``, ``ray://HOST:10001``); None: Ray's
            default (``$RAY_ADDRESS``, a cluster started on this machine, else a private one).
        progress: ``"bar"``, ``"jsonl"``, ``"none"``/None, or a callable(event dict).
        overwrite: replace existing outputs (never an input).
        summary: the summary JSON path (default ``outdir/summary.json``).
        max_attempts: runs of a clip whose worker was lost, at most.

    Returns:
        BatchResult.

    Raises:
        InputError: a batch-wide problem found before any clip ran (output folder, summary
            exists, the same input twice, bad genre/instruments/control/soundfont);
            ModelLoadError: the model.
    """
    t_start = time.perf_counter()
    options = dict(options)
    overwrite = bool(options.pop("overwrite", False)) or overwrite
    outdir = Path(os.path.abspath(outdir))
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: output folder is a file")
    summary_path = Path(os.path.abspath(summary)) if summary else outdir / SUMMARY_NAME
    input_keys = {_key(Path(os.path.abspath(v))) for v in videos}
    if _key(summary_path) in input_keys:
        raise InputError(f"{summary_path}: the summary would replace an input")
    if summary_path.exists() and not overwrite:
        raise InputError(f"{summary_path}: output exists (use --overwrite to replace it, or "
                         "--summary PATH)")
    names = plan_outputs(videos, outdir, reserved=[summary_path])
    check_options(options)
    outdir.mkdir(parents=True, exist_ok=True)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK):
        raise InputError(f"{outdir}: output folder is not writable")
    seed = batch_seed(options)
    clips = [Clip(i, os.path.abspath(v), name, clip_seed(seed, v), outdir)
             for i, (v, name) in enumerate(zip(videos, names))]

    # Clips that cannot run are answered now, without a worker.
    todo = collections.deque()
    for c in clips:
        if not Path(c.video).is_file():
            c.status, c.error = "failed", (f"{c.video}: no such video file" if not
                                           Path(c.video).exists() else f"{c.video}: not a file")
        elif not overwrite and any(Path(p).exists() for p in c.outputs.values()):
            existing = next(p for p in c.outputs.values() if Path(p).exists())
            c.status, c.error = "failed", f"{existing}: output exists (use --overwrite to replace it)"
        else:
            todo.append(c)

    eng = make_engine(engine, jobs, address)
    report = Reporter(progress, len(clips))
    staging = Path(tempfile.mkdtemp(prefix=".vbgm-batch-", suffix=".tmp", dir=outdir))
    finished = False
    try:
        for c in clips:
            if c.status == "failed":
                report(event="clip", video=c.video, status=c.status, seconds=c.seconds,
                       error=c.error)
        if todo:
            eng.start(options)
        report(event="batch", total=len(clips), engine=eng.name, jobs=eng.jobs,
               output=str(outdir))
        inflight = {}   # handle → (clip, worker)
        while todo or inflight:
            for worker in eng.idle():
                if not todo:
                    break
                c = todo.popleft()
                c.attempts += 1
                c.status, c.worker = "running", worker
                job = {"video": c.video, "seed": c.seed, "options": options,
                       "dir": str(staging / f"{c.index}-{c.attempts}")}
                inflight[eng.submit(worker, job)] = (c, worker)
                report(event="start", video=c.video, worker=worker, attempt=c.attempts)
            for handle, outcome in eng.wait(timeout=0.5):
                c, worker = inflight.pop(handle)
                if isinstance(outcome, WorkerLost):
                    if c.attempts < max_attempts:
                        c.status = "pending"
                        todo.appendleft(c)
                        report(event="retry", video=c.video, worker=worker, error=str(outcome))
                        continue
                    c.status, c.error = "failed", (f"{c.video}: its worker was lost "
                                                   f"{c.attempts} times ({outcome})")
                else:
                    c.seconds = outcome["seconds"]
                    if outcome["ok"]:
                        try:
                            _land(outcome["files"], c.outputs, overwrite)
                            c.status = "ok"
                        except VbgmError as e:
                            c.status, c.error = "failed", str(e)
                    else:
                        c.status, c.error = "failed", outcome["error"]
                shutil.rmtree(staging / f"{c.index}-{c.attempts}", ignore_errors=True)
                report(event="clip", video=c.video, status=c.status,
                       seconds=None if c.seconds is None else round(c.seconds, 3), error=c.error,
                       outputs=c.outputs if c.ok else None)
        finished = True
    finally:
        eng.close(kill=not finished)
        shutil.rmtree(staging, ignore_errors=True)
        report.close()
        for c in clips:
            if c.status in ("pending", "running"):
                c.status, c.error = "cancelled", "the batch was interrupted"
        scored = sum(c.ok for c in clips)
        doc = {"engine": eng.name, "jobs": eng.jobs, "seed": seed, "output": str(outdir),
               "finished": finished, "seconds": round(time.perf_counter() - t_start, 3),
               "scored": scored, "failed": len(clips) - scored,
               "clips": [c.row() for c in clips]}
        from ..files import atomic_path

        with atomic_path(summary_path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))
    report(event="done", scored=doc["scored"], failed=doc["failed"], summary=str(summary_path))
    return BatchResult(clips, summary_path, doc)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within: SIGTERM raises KeyboardInterrupt in the main thread, so that a terminated batch
    ends its workers and removes its temporaries as after Ctrl-C."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
