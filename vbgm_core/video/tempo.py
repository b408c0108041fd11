"""Tempo from the visual rhythm: the BPM whose beat grid best explains the visual beats.

Each candidate tempo (``TEMPO_RANGE``, steps of 0.5 BPM) is scored by how well the
saliency-weighted impacts line up on a grid of its period, at the beat, eighth and sixteenth
levels: ``sum_m w_m |sum_i s_i exp(2 pi i m t_i / P)| / sum_i s_i`` (a phase-free comb, so a
visual rhythm that starts off the music's downbeat still finds its tempo). A broad log-normal
prior centred on ``_PRIOR_BPM`` breaks near-ties. Deterministic.
"""

import numpy as np

TEMPO_RANGE = (70.0, 140.0)
DEFAULT_TEMPO = 100.0  # when the video has no visual rhythm at all (a still clip)
_STEP = 0.5
_LEVELS = ((1, 1.0), (2, 0.5), (4, 0.25))  # (subdivision, weight)
_PRIOR_BPM, _PRIOR_OCTAVES = 105.0, 1.0


def tempo_scores(times, saliency, candidates):
    """Grid-fit score of each candidate tempo (BPM) for impacts at ``times`` (s) with weights."""
    times = np.asarray(times, dtype=np.float64)
    weights = np.asarray(saliency, dtype=np.float64)
    total = weights.sum()
    beat_hz = np.asarray(candidates, dtype=np.float64) / 60.0
    score = np.zeros(len(beat_hz))
    for m, w in _LEVELS:
        phase = np.exp(2j * np.pi * m * np.outer(beat_hz, times))
        score += w * np.abs(phase @ weights) / total
    prior = np.exp(-0.5 * (np.log2(beat_hz * 60.0 / _PRIOR_BPM) / _PRIOR_OCTAVES) ** 2)
    return score * prior


def estimate_tempo(times, saliency):
    """Best tempo in ``TEMPO_RANGE`` (BPM) for the impacts; ``DEFAULT_TEMPO`` without impacts."""
    if len(times) < 2 or float(np.sum(saliency)) <= 0:
        return DEFAULT_TEMPO
    candidates = np.arange(TEMPO_RANGE[0], TEMPO_RANGE[1] + _STEP / 2, _STEP)
    return float(candidates[int(np.argmax(tempo_scores(times, saliency, candidates)))])


# The music should end with the video, on a bar line: the detected tempo may move this much
# (a few percent is inaudible as a tempo change, and the visual beats still land within a tick
# over a typical clip).
END_TOLERANCE = 0.04


def fit_to_duration(tempo_bpm, duration_s, tolerance=END_TOLERANCE):
    """The tempo nearest ``tempo_bpm`` (within ``tolerance``, relative) at which ``duration_s``
    holds a whole number of bars, else a whole number of beats; else ``tempo_bpm`` itself."""
    for beats in (4, 1):  # a bar, then a beat
        units = max(1, round(tempo_bpm * duration_s / 60.0 / beats))
        fitted = units * beats * 60.0 / duration_s
        if abs(fitted / tempo_bpm - 1.0) <= tolerance:
            return fitted
    return tempo_bpm
