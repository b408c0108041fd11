"""Streaming video frames with container time stamps, at a small analysis resolution.

Frames are decoded one at a time (bounded memory for any length or resolution) and each carries
its presentation time from the container (OpenCV's ``CAP_PROP_POS_MSEC``), never ``index / fps``:
variable-frame-rate clips and clips with absurd fps metadata (``r_frame_rate=90000/1``) still map
frames to the right seconds. Decoding runs in a background thread so that it overlaps with the
optical flow on the caller's side (OpenCV releases the GIL in both).
"""

import math
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..mux import media_duration

# Analysis resolution: short side in pixels (METHOD.md uses 360; 180 is 4x cheaper and the flow
# is normalised by the short side, so speeds do not depend on this choice).
DEFAULT_SHORT_SIDE = 180
# A frame rate outside this range in the metadata is not believed (seen: 90000/1).
_PLAUSIBLE_FPS = (1.0, 240.0)
# Seek this far before ``start`` and decode forward: OpenCV seeks to key frames by its fps guess.
_SEEK_MARGIN_S = 2.0


@dataclass(frozen=True)
class VideoInfo:
    """What OpenCV (and ffprobe, when on PATH) says about a file before decoding.

    Attributes:
        width, height: coded frame size in pixels.
        fps_meta: the container's frame rate; may be absurd, used only as a fallback.
        duration_s: expected duration in seconds (for progress and range checks), or None.
    """

    width: int
    height: int
    fps_meta: float
    duration_s: float | None


def analysis_size(width, height, short_side=DEFAULT_SHORT_SIDE):
    """Frame size ``(w, h)`` with the short side scaled to ``short_side`` (never upscaled).

    Both sides are even, so portrait and landscape clips keep their aspect ratio.
    """
    scale = min(1.0, short_side / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _container_duration(path):
    """The duration of record: the video stream's (else the container's) duration as ffprobe
    reads it (``mux.media_duration``), or None when it cannot tell. The mux cuts the scored
    copy to it, so the music is made exactly this long (the last frame's time + a guessed frame
    step is not: few, irregular frames make that guess long)."""
    try:
        value = media_duration(path, "video")
    except InputError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _open(path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    # Absolute: FFmpeg behind OpenCV reads "concat:a.mp4|b.mp4" (or "http:...") as a protocol.
    cap = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise InputError(f"{path}: not a readable video (unknown format, unsupported codec, "
                         "or no video stream)")
    return cap


def probe(path):
    """Read a video's size, frame-rate metadata and expected duration without decoding it.

    Raises:
        InputError: missing file, or a file OpenCV cannot open as video.
    """
    cap = _open(path)
    try:
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
    finally:
        cap.release()
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: no video stream (audio-only or empty file?)")
    duration = _container_duration(path)
    if duration is None and _PLAUSIBLE_FPS[0] <= fps <= _PLAUSIBLE_FPS[1] and count > 0:
        duration = count / fps
    return VideoInfo(width, height, fps, duration)


def _decode(path, size, start, end, out, stop):
    """Decoder thread body: put ``(t, small_bgr)`` on ``out``, then ``None`` (or an exception)."""
    try:
        cap = _open(path)
        try:
            if start > _SEEK_MARGIN_S:
                cap.set(cv2.CAP_PROP_POS_MSEC, (start - _SEEK_MARGIN_S) * 1000.0)
            first = True
            prev_t = -math.inf
            while not stop.is_set():
                if not cap.grab():
                    break
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if first and t > start + 1e-6 and start > _SEEK_MARGIN_S:
                    # The seek overshot: decode from the beginning instead.
                    cap.release()
                    cap = _open(path)
                    first = False
                    continue
                first = False
                if t <= prev_t:  # a repeated or broken time stamp: drop the frame
                    continue
                prev_t = t
                if t < start - 1e-6:
                    continue
                if end is not None and t >= end - 1e-6:
                    break
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                if frame.ndim == 2:
                    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                out.put((t - start, frame))
        finally:
            cap.release()
        out.put(None)
    except BaseException as e:  # handed to the consumer, which re-raises it
        out.put(e)


def iter_frames(path, short_side=DEFAULT_SHORT_SIDE, start=None, end=None):
    """Yield ``(time_s, frame)`` for the frames of ``path`` in ``[start, end)``.

    Args:
        path: video file.
        short_side: analysis resolution (short side in pixels; never upscaled).
        start, end: range in seconds of the source; times yielded are relative to ``start``.

    Yields:
        ``(t, frame)``: ``t`` in seconds from ``start`` (container time stamps, strictly
        increasing), ``frame`` a ``(h, w, 3)`` uint8 BGR array at analysis size.

    Raises:
        InputError: unreadable file.
    """
    info = probe(path)
    size = analysis_size(info.width, info.height, short_side)
    out = queue.Queue(maxsize=32)  # bounded: decoding never runs far ahead of analysis
    stop = threading.Event()
    worker = threading.Thread(target=_decode, args=(path, size, start or 0.0, end, out, stop),
                              daemon=True, name="vbgm-decode")
    worker.start()
    count = 0
    try:
        while True:
            item = out.get()
            if item is None:
                if count < 2 and (start or end is not None):  # the range, not the file
                    until = "the end" if end is None else f"{end:g} s"
                    raise InputError(f"{path}: the range {start or 0:g}-{until} holds {count} "
                                     "frame(s); give a range of at least two frames")
                return
            if isinstance(item, BaseException):
                raise item
            count += 1
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def frame_duration(times, fps_meta=0.0):
    """Typical frame interval in seconds: median of the time-stamp steps (metadata as fallback)."""
    if len(times) >= 2:
        step = float(np.median(np.diff(times)))
        if step > 0:
            return step
    if _PLAUSIBLE_FPS[0] <= fps_meta <= _PLAUSIBLE_FPS[1]:
        return 1.0 / fps_meta
    return 1.0 / 25.0
