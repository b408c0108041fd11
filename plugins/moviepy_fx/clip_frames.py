"""A clip's own frames at the analysis rate and size, and a digest of their content.

The frames come from ``clip.get_frame(t)``, so an edited clip (subclip, concatenation, speed
change, composite) is scored as edited. They are shrunk to the analysis size right away,
exactly as ``analyze_frames`` would shrink them, so the digest covers what the analysis sees and
the frames kept for it stay small.
"""

import hashlib
import math

import cv2
import numpy as np

from vbgm_core.errors import InputError
from vbgm_core.video.frames import DEFAULT_SHORT_SIDE, analysis_size

# Frame rate for clips that have none (a composite of still images, a clip built from a
# function); clips faster than MAX_FPS are sampled at MAX_FPS: the analysis normalises speeds
# per second, so a 60 fps clip gains nothing over 30 but costs twice the optical flow.
DEFAULT_FPS = 25.0
MAX_FPS = 30.0
# Frames kept in memory for the analysis after digesting; past this the clip is read again.
KEEP_BYTES = 512 * 2**20


def analysis_fps(clip):
    """Sampling rate for ``clip``: its own fps, at most ``MAX_FPS``; ``DEFAULT_FPS`` if unset."""
    fps = getattr(clip, "fps", None)
    return min(float(fps), MAX_FPS) if fps and fps > 0 else DEFAULT_FPS


def frame_times(duration_s, fps):
    """Times of the frames that start inside ``[0, duration_s)``."""
    n = max(0, math.ceil(duration_s * fps - 1e-9))
    return [i / fps for i in range(n)]


def _rgb_uint8(frame, t):
    frame = np.asarray(frame)
    if frame.ndim == 2:  # a greyscale (mask-like) clip
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise InputError(f"clip frame at {t:.3f} s has shape {frame.shape}, not (h, w, 3) RGB")
    frame = frame[:, :, :3]
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frame


def iter_small_frames(clip, fps, short_side=DEFAULT_SHORT_SIDE, progress=None):
    """Yield ``(t, frame)`` for the clip's frames, RGB uint8 at the analysis size.

    Args:
        clip: a MoviePy video clip (1.x or 2.x) with a duration.
        fps: sampling rate in frames per second.
        short_side: analysis short side in pixels (never upscaled).
        progress: optional ``progress(fraction)``.
    """
    times = frame_times(clip.duration, fps)
    for i, t in enumerate(times):
        frame = _rgb_uint8(clip.get_frame(t), t)
        size = analysis_size(frame.shape[1], frame.shape[0], short_side)
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        else:
            frame = frame.copy()  # readers may reuse their buffer; the frame may be kept
        if progress is not None:
            progress((i + 1) / len(times))
        yield t, frame


def digest_frames(clip, fps, short_side=DEFAULT_SHORT_SIDE, progress=None, keep_bytes=KEEP_BYTES):
    """Read the clip once: a digest of its sampled frames, and the frames while they fit.

    Returns:
        ``(hex digest, frames)``; ``frames`` is the list of ``(t, frame)`` or None when they
        exceeded ``keep_bytes`` (then read them again with ``iter_small_frames``).
    """
    h = hashlib.blake2b(digest_size=20)
    h.update(f"fps={fps!r} short_side={short_side}".encode())
    kept, size = [], 0
    for t, frame in iter_small_frames(clip, fps, short_side, progress):
        h.update(f"{t!r} {frame.shape}".encode())
        h.update(np.ascontiguousarray(frame).data)
        if kept is not None:
            kept.append((t, frame))
            size += frame.nbytes
            if size > keep_bytes:
                kept = None
    return h.hexdigest(), kept


def digest_file(path, chunk_bytes=2**22):
    """Digest of a file's bytes (the cache key of an unedited file clip)."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()
