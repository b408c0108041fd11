"""Hard shot boundaries from the change between consecutive frames.

The change is the larger of the colour-histogram distance (catches a change of palette) and the
mean absolute grey-level difference (catches two shots with the same palette). A cut is a frame
that differs from the previous frame far more than is usual around it: an absolute floor rejects small changes, the local-median ratio rejects steady fast
motion and flicker, and only the strongest change within a short window is kept.
"""

import cv2
import numpy as np

_BINS = 16  # per colour channel
# Frame change (0..1) that a cut must exceed.
CUT_MIN_DIFF = 0.3
# A cut must exceed this multiple of the median difference around it.
CUT_RATIO = 4.0
# Half-width, in frames, of the neighbourhood for the median and for non-maximum suppression.
_WINDOW = 6


def colour_histogram(frame):
    """Normalised per-channel histogram of a ``(h, w, 3)`` uint8 frame, shape ``(3 * 16,)``."""
    hist = np.concatenate([cv2.calcHist([frame], [c], None, [_BINS], [0, 256]).ravel()
                           for c in range(3)])
    return hist / (frame.shape[0] * frame.shape[1])


def frame_change(hist1, hist2, gray1, gray2):
    """Change between two frames in 0..1: max of histogram L1 distance and grey difference.

    Args:
        hist1, hist2: ``colour_histogram`` of the frames.
        gray1, gray2: ``(h, w)`` uint8 grey frames.
    """
    hist = float(np.abs(hist1 - hist2).sum()) / 6.0
    pixels = float(cv2.absdiff(gray1, gray2).mean()) / 128.0
    return min(1.0, max(hist, pixels))


def detect_cuts(diffs):
    """Indices of frames that start a new shot.

    Args:
        diffs: ``(n,)`` ``frame_change`` between frame i-1 and frame i (``diffs[0]`` = 0).

    Returns:
        Sorted list of frame indices ``i`` (the first frame of each new shot).
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    cuts = []
    for i in np.flatnonzero(diffs > CUT_MIN_DIFF):
        lo, hi = max(0, i - _WINDOW), min(len(diffs), i + _WINDOW + 1)
        window = diffs[lo:hi]
        if diffs[i] < window.max():  # a stronger change nearby wins
            continue
        others = np.delete(window, i - lo)
        if others.size and diffs[i] < CUT_RATIO * np.median(others):
            continue
        cuts.append(int(i))
    return cuts
