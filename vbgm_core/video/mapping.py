"""Video measurements → the music's control values, by matching percentiles (METHOD.md §1.2).

* Density: a bar's speed percentile within ``speed_reference.json`` (per-bar speeds over the real
  clips of ``../shared/videos``, rebuilt by ``scripts/build_speed_reference.py``) → the bar
  density at the same percentile of the training music's bar densities, empty bars (density 0)
  excluded. A clip whose every bar is still gets the lowest density, 0.
* Strength: a visual beat's saliency (0..1; a cut = 1) read as a percentile → the notes-per-beat
  count at that percentile of the training music's strength distribution.

The music distributions come from ``vbgm_core/assets/music_stats.json`` (written from the
training data) whenever that file exists. Without it the documented defaults apply: the
paper authors' 16 speed thresholds (METHOD.md §6; Farneback pixels per frame at 360 px,
converted to short sides per second at 30 fps) and a linear saliency → strength map onto the
authors' 10 strength classes (1..10 notes).
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError

SPEED_REFERENCE = Path(__file__).with_name("speed_reference.json")
MUSIC_STATS = Path(__file__).resolve().parents[1] / "assets" / "music_stats.json"

# Bars slower than this (short sides per second) are still; measured on the SMPTE pattern.
STILL_SPEED = 0.01
# Percentiles are capped here so that one rare tail bin of the music cannot decide.
_MAX_QUANTILE = 0.98
_PAPER_THRESHOLDS = np.array([0.008169, 0.020344, 0.029795, 0.041042, 0.070875, 0.105125,
                              0.142673, 0.190956, 0.515512, 0.751478, 0.998934, 1.206753,
                              1.632258, 2.031705, 2.467431, 2.810442]) * (30.0 / 360.0)
_FALLBACK_STRENGTH_CLASSES = 10


@lru_cache(maxsize=1)
def speed_reference():
    """Sorted per-bar speeds of the reference clips (short sides per second)."""
    try:
        data = json.loads(SPEED_REFERENCE.read_text())
        speeds = np.sort(np.asarray(data["bar_speeds"], dtype=np.float64))
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{SPEED_REFERENCE}: unreadable speed reference ({e}); rebuild it "
                             "with scripts/build_speed_reference.py") from e
    if speeds.size == 0:
        raise ModelLoadError(f"{SPEED_REFERENCE}: empty speed reference")
    return speeds


def music_stats(path=None):
    """The training music's ``density_hist`` (17) and ``strength_hist`` (25), or None if absent.

    Read on every call (not cached), so a file written while the process runs is picked up.

    Raises:
        ModelLoadError: the file exists but is malformed.
    """
    path = Path(path or MUSIC_STATS)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        density = np.asarray(data["density_hist"], dtype=np.float64)
        strength = np.asarray(data["strength_hist"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: malformed music statistics ({e})") from e
    if density.shape != (17,) or strength.shape != (25,) or density[1:].sum() <= 0 \
            or strength[1:].sum() <= 0:
        raise ModelLoadError(f"{path}: density_hist needs 17 counts and strength_hist 25, "
                             "with some non-empty bars and beats")
    return {"density_hist": density, "strength_hist": strength}


def _inverse_cdf(hist, q, first):
    """Smallest value v >= first whose cumulative share of ``hist[first:]`` reaches ``q``."""
    counts = np.asarray(hist[first:], dtype=np.float64)
    cdf = np.cumsum(counts) / counts.sum()
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, _MAX_QUANTILE)
    idx = np.searchsorted(cdf, q - 1e-12, side="left")
    # q = 0 must still land on a value that occurs.
    idx = np.maximum(idx, int(np.flatnonzero(counts)[0]))
    return (np.minimum(idx, len(counts) - 1) + first).astype(int)


def speed_percentile(speeds):
    """Percentile (0..1) of each speed within the reference distribution (mid-rank)."""
    ref = speed_reference()
    speeds = np.asarray(speeds, dtype=np.float64)
    lo = np.searchsorted(ref, speeds, side="left")
    hi = np.searchsorted(ref, speeds, side="right")
    return (lo + hi) / (2.0 * ref.size)


def bar_densities(speeds, stats=None):
    """Density class (0..16) for each bar's speed.

    Args:
        speeds: ``(n_bars,)`` per-bar speeds, short sides per second.
        stats: ``music_stats()`` result, or None for the paper-threshold default.
    """
    speeds = np.asarray(speeds, dtype=np.float64)
    if speeds.size == 0:
        return np.zeros(0, dtype=int)
    if np.all(speeds < STILL_SPEED):
        # The lowest density that still plays (one onset a bar): calm music, not silence.
        return np.ones(speeds.size, dtype=int)
    if stats is None:
        return np.clip(np.searchsorted(_PAPER_THRESHOLDS, speeds, side="right"), 1, 16)
    return _inverse_cdf(stats["density_hist"], speed_percentile(speeds), first=1)


def beat_strengths(saliency, stats=None):
    """Strength (notes on the beat, >= 1) for each visual beat's saliency (0..1)."""
    saliency = np.clip(np.asarray(saliency, dtype=np.float64), 0.0, 1.0)
    if stats is None:
        return 1 + np.round(saliency * (_FALLBACK_STRENGTH_CLASSES - 1)).astype(int)
    return _inverse_cdf(stats["strength_hist"], saliency, first=1)
