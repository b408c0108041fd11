"""`vbgm batch`: score many videos in a process pool; one failure never stops the others."""

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .errors import VbgmError


def _score_one(job):
    """Worker: score one video into OUTDIR/<stem>.mp4 / .mid / .json; never raises."""
    video, outdir, options = job
    stem = Path(video).stem
    t0 = time.perf_counter()
    row = {"video": video, "output": str(Path(outdir) / f"{stem}.mp4")}
    try:
        import json

        from .api import score_video
        from .files import atomic_path

        result = score_video(video, out_video=row["output"],
                             out_midi=Path(outdir) / f"{stem}.mid", **options)
        with atomic_path(Path(outdir) / f"{stem}.json") as tmp:
            tmp.write_text(json.dumps(result.report, indent=1))
        row.update(ok=True, error=None)
    except VbgmError as e:
        row.update(ok=False, error=str(e))
    except Exception as e:  # a bug on one video is reported like an error, the batch goes on
        row.update(ok=False, error=f"{video}: {type(e).__name__}: {e}")
    row["seconds"] = time.perf_counter() - t0
    return row


def run_batch(videos, outdir, options, jobs=1, progress=False):
    """Score every video; returns one row per video (in the given order).

    Args:
        videos: video paths.
        outdir: output folder (created).
        options: keyword arguments of ``score_video`` shared by all videos.
        jobs: processes; each loads the model once.
        progress: a tqdm bar over the videos on stderr.
    """
    Path(outdir).mkdir(parents=True, exist_ok=True)
    work = [(str(v), str(outdir), options) for v in videos]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = pool.map(_score_one, work)
        if progress:
            from tqdm import tqdm

            rows = tqdm(rows, total=len(work), desc="batch", unit="video")
        return list(rows)
