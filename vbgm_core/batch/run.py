"""`vbgm batch`: score many videos on a local process pool or a Ray cluster.

One scheduler, two engines. The engine only runs jobs (``worker.score_clip``, in a worker that
loads the model once); everything a user can see is decided in the driver, the same way for
both engines: names and seeds before any job starts (``plan.py``), and here:
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
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from ..errors import InputError, Terminated, VbgmError
from ..files import atomic_path
from .local_engine import LocalEngine
from .plan import Clip, batch_seed, check_options, clip_seed, key_of, plan_outputs
from .worker import WorkerLost

SUMMARY_NAME = "summary.json"
MAX_ATTEMPTS = 3      # a clip whose worker is lost is retried; after 3 lost workers it fails


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
    outdir, summary_path = _check_places(videos, outdir, summary, overwrite)
    names = plan_outputs(videos, outdir, reserved=[summary_path])
    check_options(options)
    _make_places(outdir, summary_path)
    seed = batch_seed(options)
    clips = [Clip(i, os.path.abspath(v), name, clip_seed(seed, v), outdir)
             for i, (v, name) in enumerate(zip(videos, names))]
    todo = collections.deque(c for c in clips if _runnable(c, overwrite))
    # No more workers than clips: each loads a model, and an idle one only costs memory.
    eng = make_engine(engine, None if jobs is None else min(jobs, max(1, len(todo))), address)
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
        _schedule(eng, todo, options, staging, report, overwrite, max_attempts)
        finished = True
    finally:
        eng.close(kill=not finished)
        shutil.rmtree(staging, ignore_errors=True)
        report.close()
        doc = _write_summary(summary_path, clips, eng, seed, outdir, finished, t_start)
    report(event="done", scored=doc["scored"], failed=doc["failed"], summary=str(summary_path))
    return BatchResult(clips, summary_path, doc)


def _check_places(videos, outdir, summary, overwrite):
    """(output folder, summary path), absolute and checked; InputError if unusable."""
    outdir = Path(os.path.abspath(outdir))
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: output folder is a file")
    summary_path = Path(os.path.abspath(summary)) if summary else outdir / SUMMARY_NAME
    input_keys = {key_of(Path(os.path.abspath(v))) for v in videos}
    if key_of(summary_path) in input_keys:
        raise InputError(f"{summary_path}: the summary would replace an input")
    if summary_path.exists() and not overwrite:
        raise InputError(f"{summary_path}: output exists (use --overwrite to replace it, or "
                         "--summary PATH)")
    return outdir, summary_path


def _make_places(outdir, summary_path):
    """Create the output folders once everything batch-wide has been checked."""
    outdir.mkdir(parents=True, exist_ok=True)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(outdir, os.W_OK):
        raise InputError(f"{outdir}: output folder is not writable")


def _runnable(c, overwrite):
    """Whether a clip can run; one that cannot is answered now (failed), without a worker."""
    if not Path(c.video).is_file():
        c.status, c.error = "failed", (f"{c.video}: no such video file" if not
                                       Path(c.video).exists() else f"{c.video}: not a file")
    elif not overwrite and any(Path(p).exists() for p in c.outputs.values()):
        existing = next(p for p in c.outputs.values() if Path(p).exists())
        c.status, c.error = "failed", f"{existing}: output exists (use --overwrite to replace it)"
    return c.status != "failed"


def _schedule(eng, todo, options, staging, report, overwrite, max_attempts):
    """Give the clips of ``todo`` to the engine's idle workers until all are done; a clip
    whose worker is lost goes back to the front of the queue."""
    inflight = {}   # handle → (clip, worker)
    while todo or inflight:
        for worker in eng.idle():
            if not todo:
                break
            c = todo.popleft()
            c.attempts += 1
            c.status, c.worker = "running", worker
            job = {"video": c.video, "seed": c.seed, "options": options,
                   "kinds": list(c.outputs), "outputs": c.outputs,
                   "dir": str(staging / f"{c.index}-{c.attempts}")}
            inflight[eng.submit(worker, job)] = (c, worker)
            report(event="start", video=c.video, worker=worker, attempt=c.attempts)
        for handle, outcome in eng.wait(timeout=0.5):
            c, worker = inflight.pop(handle)
            if isinstance(outcome, WorkerLost) and c.attempts < max_attempts:
                c.status = "pending"
                todo.appendleft(c)
                report(event="retry", video=c.video, worker=worker, error=str(outcome))
                continue
            _finish(c, outcome, overwrite)
            shutil.rmtree(staging / f"{c.index}-{c.attempts}", ignore_errors=True)
            report(event="clip", video=c.video, status=c.status,
                   seconds=None if c.seconds is None else round(c.seconds, 3), error=c.error,
                   outputs=c.outputs if c.ok else None)


def _finish(c, outcome, overwrite):
    """A clip's last outcome: its files landed under their final names, or its error."""
    if isinstance(outcome, WorkerLost):
        c.status, c.error = "failed", (f"{c.video}: its worker was lost {c.attempts} times "
                                       f"({outcome})")
        return
    c.seconds = outcome["seconds"]
    if not outcome["ok"]:
        c.status, c.error = "failed", outcome["error"]
        return
    try:
        _land(outcome["files"], c.outputs, overwrite)
        c.status = "ok"
    except VbgmError as e:
        c.status, c.error = "failed", str(e)


def _write_summary(path, clips, eng, seed, outdir, finished, t_start):
    """The summary JSON of a finished or interrupted batch (every clip's row); its dict."""
    for c in clips:
        if c.status in ("pending", "running"):
            c.status, c.error = "cancelled", "the batch was interrupted"
    scored = sum(c.ok for c in clips)
    doc = {"engine": eng.name, "jobs": eng.jobs, "seed": seed, "output": str(outdir),
           "finished": finished, "seconds": round(time.perf_counter() - t_start, 3),
           "scored": scored, "failed": len(clips) - scored, "clips": [c.row() for c in clips]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    return doc


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within: SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread, so that
    a terminated batch ends its workers and removes its temporaries as after Ctrl-C, and
    exits 143 as a process ended by SIGTERM."""
    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
