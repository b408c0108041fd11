"""Optical flow between consecutive analysis frames: motion magnitude and directogram.

OpenCV's DIS flow (preset chosen by measurement, see docs/VIDEO.md) on grey frames at the
analysis resolution. Every quantity is normalised to *short sides per second*: the flow in
pixels is divided by the frame's short side and by the time between the two frames, so speeds
do not depend on the analysis resolution, the source resolution or the frame rate (a 12.5 fps
clip and a 30 fps clip of the same motion give the same speed).
"""

import cv2
import numpy as np

# Directions of the directogram (Davis & Agrawala use 128 angle bins).
DIRECTOGRAM_BINS = 128
# Fraction of each side ignored at the border, where flow is unreliable.
BORDER = 0.05
# DIS preset: ULTRAFAST measured ~2x faster than FAST at 320x180 with the same speeds on real
# clips to a few percent (benchmarks/bench_analyze.py --presets).
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST


class FlowMeter:
    """Measures motion between consecutive grey frames of one size.

    Args:
        size: ``(w, h)`` of the analysis frames.
        preset: an OpenCV ``DISOPTICAL_FLOW_PRESET_*`` value (default ``DIS_PRESET``).
    """

    def __init__(self, size, preset=None):
        w, h = size
        self.short_side = float(min(w, h))
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESET if preset is None else preset)
        bx, by = int(round(w * BORDER)), int(round(h * BORDER))
        self._crop = (slice(by, h - by), slice(bx, w - bx))
        self._n_inner = len(range(by, h - by, 2)) * len(range(bx, w - bx, 2))

    def measure(self, prev_gray, gray, dt):
        """Motion from ``prev_gray`` to ``gray``, ``dt`` seconds apart.

        Args:
            prev_gray, gray: ``(h, w)`` uint8 frames.
            dt: seconds between them (> 0).

        Returns:
            ``(F, directogram)``: ``F`` = mean flow magnitude over the frame (METHOD.md eq. 4)
            in short sides per second; ``directogram`` = ``(DIRECTOGRAM_BINS,)`` float32, the
            magnitude-weighted histogram of flow directions over the frame minus its border,
            in the same unit (its sum is the interior's mean speed).
        """
        flow = self._dis.calc(prev_gray, gray, None)
        mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        unit = 1.0 / (self.short_side * dt)
        speed = float(mag.mean()) * unit
        # Every second pixel each way: the histogram's shape is the same, at a quarter the cost.
        inner_mag = mag[self._crop][::2, ::2].ravel()
        bins = (ang[self._crop][::2, ::2].ravel() * (DIRECTOGRAM_BINS / (2 * np.pi))).astype(
            np.int32)
        np.minimum(bins, DIRECTOGRAM_BINS - 1, out=bins)  # angle 2*pi exactly
        hist = np.bincount(bins, weights=inner_mag, minlength=DIRECTOGRAM_BINS)
        return speed, (hist * (unit / self._n_inner)).astype(np.float32)
