"""The local batch engine: a process pool on this machine; each process loads the model once.

Both engines (this and ``ray_engine.RayEngine``) have: ``start(options)``, ``idle()`` → free
ready workers, ``submit(worker, job)`` → handle, ``wait(timeout)`` → ``[(handle, outcome)]``
(an outcome is ``score_clip``'s dict, or ``WorkerLost``), ``close(kill)``.
"""

import contextlib
import os
import signal

from .worker import WorkerLost, score_clip


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
