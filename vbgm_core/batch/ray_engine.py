"""`vbgm batch --engine ray`: the batch's jobs on a pool of Ray actors.

Each actor loads the model once (``batch.preflight``) and scores many clips with the same
``batch.score_clip`` the local pool runs; the driver (``batch.run_batch``) keeps the names,
seeds, output landing and summary, so both engines give the same files. Inputs and the output
folder are paths that every node reads and writes at the same place (a shared folder).

Actors are named ``vbgm-batch-<run>-<n>`` in the namespace ``vbgm`` (so that an operator, or a
test, can find one with ``ray.get_actor``). A clip is given only to an actor that has finished
loading, so asking for more actors than the cluster has CPUs never deadlocks: the extra ones
wait for room. A dead actor (killed, its node lost, out of memory) is replaced and its clip
retried by the driver, a bounded number of times. Requires ``pip install 'vbgm[ray]'``.
"""

import logging
import signal
import threading
import time
import uuid

import ray
import ray.exceptions as rex

from ..errors import VbgmError
from .worker import WorkerLost, preflight, score_clip

NAMESPACE = "vbgm"
READY_TIMEOUT_S = 600   # no actor has loaded the model in this long: the cluster has no room
LOST = tuple(getattr(rex, n) for n in ("RayActorError", "ActorUnavailableError",
                                       "WorkerCrashedError", "ObjectLostError",
                                       "OutOfMemoryError", "NodeDiedError") if hasattr(rex, n))


@ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)
class ScoringActor:
    """One worker: the model loaded once, then clip after clip."""

    def __init__(self, options):
        try:
            preflight(options)
            self.error = None
        except VbgmError as e:  # reported by ready(): one error for the whole batch
            self.error = (type(e).__name__, e.exit_code, str(e))

    def ready(self):
        import os

        return {"error": self.error, "pid": os.getpid()}

    def score(self, job):
        return score_clip(job)


class RayEngine:
    """The batch engine interface of ``batch.LocalEngine``, on Ray actors."""

    name = "ray"

    def __init__(self, jobs=None, address=None):
        self.requested, self.address = jobs, address
        self.jobs = None
        self.run = uuid.uuid4().hex[:8]
        self.actors = {}     # name → handle
        self.loading = {}    # ready ref → name
        self.free = []       # ready names without work, in order
        self.busy = {}       # score ref → name
        self.serial = 0
        self.init_failures = 0
        self.options = None
        self.connected = False

    def start(self, options):
        kwargs = dict(namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING,
                      include_dashboard=False)
        sigterm = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=self.address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise VbgmError(f"cannot reach the Ray cluster at {self.address or 'default'}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        finally:  # ray.init puts its own SIGTERM handler (exit at once); the batch's cleans up
            if sigterm is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, sigterm)
        self.connected = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.jobs = max(1, int(self.requested or cpus or 1))
        self.options = options
        for _ in range(self.jobs):
            self._spawn()
        self.started = time.monotonic()

    def _spawn(self):
        self.serial += 1
        name = f"vbgm-batch-{self.run}-{self.serial}"
        actor = ScoringActor.options(name=name, namespace=NAMESPACE).remote(self.options)
        self.actors[name] = actor
        self.loading[actor.ready.remote()] = name

    def _drop(self, name):
        actor = self.actors.pop(name, None)
        if actor is not None:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        if name in self.free:
            self.free.remove(name)

    def idle(self):
        return list(self.free)

    def submit(self, worker, job):
        self.free.remove(worker)
        ref = self.actors[worker].score.remote(job)
        self.busy[ref] = worker
        return ref

    def _loaded(self, ref):
        name = self.loading.pop(ref)
        try:
            answer = ray.get(ref)
        except rex.RayError as e:   # died while loading (killed, node lost, import error)
            self._drop(name)
            self.init_failures += 1
            if self.init_failures > self.jobs + 2:
                raise VbgmError(f"Ray workers keep failing to start: {_first_line(e)}") from e
            self._spawn()
            return
        if answer["error"]:
            kind, code, message = answer["error"]
            error = VbgmError(message)
            error.exit_code = code  # the worker's InputError / ModelLoadError, for the exit code
            raise error
        self.free.append(name)

    def wait(self, timeout):
        refs = list(self.busy) + list(self.loading)
        if not refs:
            return []
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        out = []
        for ref in done:
            if ref in self.loading:
                self._loaded(ref)
                continue
            name = self.busy.pop(ref)
            try:
                out.append((ref, ray.get(ref)))
                if name in self.actors:
                    self.free.append(name)
            except LOST as e:
                self._drop(name)
                self._spawn()
                out.append((ref, WorkerLost(f"Ray actor {name} lost: {_first_line(e)}")))
            except rex.RayError as e:   # not a lost worker: a failure of this clip
                if name in self.actors:
                    self.free.append(name)
                out.append((ref, {"ok": False, "error": _first_line(e), "seconds": None,
                                  "files": None}))
        if not self.free and not self.busy and self.loading and \
                time.monotonic() - self.started > READY_TIMEOUT_S:
            raise VbgmError(f"no Ray worker could start within {READY_TIMEOUT_S} s (does the "
                            "cluster have a free CPU?)")
        return out

    def close(self, kill=False):
        if not self.connected:
            return
        for name in list(self.actors):
            self._drop(name)
        ray.shutdown()
        self.connected = False


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
