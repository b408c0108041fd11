"""Visual beats, after Davis & Agrawala, "Visual Rhythm and Beat" (SIGGRAPH 2018).

Clean-room implementation of the published algorithm (METHOD.md §1.3, §6):

1. directogram: per frame pair, the flow magnitude histogrammed by direction (``flow.py``);
2. deceleration flux: per frame, the motion that *stops* in each direction between the pair
   before it and the pair after it, summed over directions (a stop or a direction change);
3. impact envelope: the flux, high-passed (minus its running mean) and normalised by its 99th
   percentile, with an absolute floor so that a still clip's compression noise stays near zero;
4. peak picking: local maxima of the envelope above a threshold;
5. selection: dynamic programming picks the peaks that keep a near-constant tempo (intervals
   close to a multiple of half the beat period), trading each peak's saliency against its
   deviation from the grid.
"""

import numpy as np

# Running-mean window of the high-pass filter, seconds.
_HIGHPASS_S = 1.0
# Envelope scale never below this flux (short sides per second), so that weak motion gives weak
# beats: the SMPTE pattern's changing counters reach 0.11, chaplin.mp4's motion 0.41.
ENVELOPE_FLOOR = 0.15
# A peak must reach this envelope value (0..1) ...
PEAK_MIN = 0.15
# ... and be the maximum within this many seconds either side.
PEAK_HALF_WINDOW_S = 0.1
# Weight of the squared log-deviation from the grid in the selection.
_GRID_WEIGHT = 50.0
# Cost of starting over off the grid (a strong isolated impact still counts as a beat).
_RESTART_COST = 0.5
# Cost of an interval that is an odd multiple of half a beat (an off-beat).
_OFFBEAT_COST = 0.1


def deceleration_flux(dir_before, dir_after):
    """Motion lost per direction between two directograms, summed: ``sum max(0, before-after)``."""
    return float(np.maximum(dir_before - dir_after, 0.0).sum())


def impact_envelope(times, flux):
    """Impact envelope in 0..1 from the per-frame deceleration flux.

    Args:
        times: ``(n,)`` frame times in seconds.
        flux: ``(n,)`` deceleration flux per frame.

    Returns:
        ``(n,)`` float64 envelope.
    """
    times = np.asarray(times, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if flux.size == 0:
        return flux
    # Running mean over a time window (handles variable frame rates).
    csum = np.concatenate([[0.0], np.cumsum(flux)])
    lo = np.searchsorted(times, times - _HIGHPASS_S / 2, side="left")
    hi = np.searchsorted(times, times + _HIGHPASS_S / 2, side="right")
    local_mean = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    high = np.maximum(flux - local_mean, 0.0)
    scale = max(float(np.percentile(high, 99)), ENVELOPE_FLOOR)
    return np.minimum(high / scale, 1.0)


def pick_peaks(times, envelope):
    """Indices of local maxima of ``envelope`` above ``PEAK_MIN``, at least one window apart."""
    times = np.asarray(times, dtype=np.float64)
    peaks = []
    for i in np.flatnonzero(envelope >= PEAK_MIN):
        lo = np.searchsorted(times, times[i] - PEAK_HALF_WINDOW_S, side="left")
        hi = np.searchsorted(times, times[i] + PEAK_HALF_WINDOW_S, side="right")
        window = envelope[lo:hi]
        # Strict maximum, or the first of equal maxima, so a plateau gives one peak.
        if envelope[i] == window.max() and not np.any(window[: i - lo] == envelope[i]):
            peaks.append(int(i))
    return peaks


def _grid_cost(interval, period):
    """Cost of ``interval`` seconds between consecutive beats on a grid of ``period`` seconds."""
    half = period / 2
    m = max(1, int(round(interval / half)))
    cost = _GRID_WEIGHT * np.log2(interval / (m * half)) ** 2
    return cost + (_OFFBEAT_COST if m % 2 else 0.0)


def select_beats(times, saliency, period):
    """Choose a tempo-regular subset of candidate beats by dynamic programming.

    Args:
        times: ``(k,)`` candidate times in seconds, increasing.
        saliency: ``(k,)`` candidate saliencies (0..1).
        period: beat period in seconds (60 / tempo).

    Returns:
        Sorted list of selected candidate indices.
    """
    k = len(times)
    if k == 0:
        return []
    score = np.zeros(k)
    back = np.full(k, -1)
    for i in range(k):
        best, arg = 0.0, -1
        for j in range(i - 1, -1, -1):
            interval = times[i] - times[j]
            if interval < period / 2 * 0.75:  # too close to share a grid
                continue
            if interval <= 4.25 * period:
                gain = score[j] - min(_grid_cost(interval, period), _RESTART_COST)
            else:
                gain = score[j] - _RESTART_COST
            if gain > best:
                best, arg = gain, j
        score[i] = saliency[i] + best
        back[i] = arg
    chain, i = [], int(np.argmax(score))
    while i >= 0:
        chain.append(i)
        i = int(back[i])
    return chain[::-1]
