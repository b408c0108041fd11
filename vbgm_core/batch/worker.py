"""What a batch worker runs (a local pool process or a Ray actor): score one clip into a
staging folder, loading the model once per process. It never raises: an error is the clip's
outcome, and the batch goes on."""

import json
import tempfile
import time
from pathlib import Path

from ..errors import VbgmError
from .plan import score_options, with_seed

STAGED = {"mp4": "scored.mp4", "midi": "music.mid", "report": "report.json",
          "timeline": "scored.otio", "wav": "music.wav"}


class WorkerLost(Exception):
    """The worker running a job died (killed process or actor); the job may be retried."""


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
    worker_scorer(kwargs).resolve(score_options(kwargs))


def _one_line(text):
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def score_clip(job):
    """Score one input into job["dir"] (a fresh staging folder): a video's mp4, a timeline's
    scored timeline and WAV, and the MIDI and JSON report, under the names of ``STAGED``.
    Returns {"ok", "error", "seconds", "files"}."""
    t0 = time.perf_counter()
    folder = Path(job["dir"])
    files = {kind: str(folder / STAGED[kind]) for kind in job["kinds"]}
    saved_tempdir = tempfile.tempdir
    try:
        import cv2

        from ..api import score_video

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # the error says it
        (folder / "tmp").mkdir(parents=True)
        tempfile.tempdir = str(folder / "tmp")  # the driver removes it, also after a kill
        kwargs = with_seed(job["options"], job["seed"])
        if "timeline" not in files:   # the batch's media folders are for its timelines
            kwargs.pop("media_dirs", None)
        result = score_video(job["video"], out_video=files.get("mp4"), out_midi=files["midi"],
                             out_timeline=files.get("timeline"), out_wav=files.get("wav"),
                             wav_reference=job["outputs"].get("wav"),
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
