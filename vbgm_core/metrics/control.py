"""How well music fits a video (METHOD.md §5).

* **Control error** (CMT paper, Table 4): normalised L2 between the video's targets and the
  attributes re-measured from the generated music (density, strength, time).
* **Rhythm alignment**: onset precision / recall / F1 of the music's strong onsets against the
  video's visual beats and cuts, a BeatAlign-style score, and the length error.

The video side is plain values (per-bar target densities, visual beats as ``(tick, strength)``
pairs with absolute 16th-note ticks, cut times in seconds, duration, tempo), so nothing here
depends on the video package. Metrics that are undefined for the given music (no notes) return
``nan``; malformed arguments raise :class:`~vbgm_core.errors.InputError`.
"""

import numpy as np

from ..errors import InputError
from ..music.tokenizer import MAX_STRENGTH, TICKS_PER_BAR, TICKS_PER_BEAT
from .grid import MAX_DENSITY, bar_densities, grid_notes, tick_strengths
from .musdr import grooving_similarity, pitch_class_entropy, structureness

# ---------------------------------------------------------------- control error


def density_error(midi, target_densities):
    """Density control error: ``mean over the video's bars of ((d_music - d_video) / 16)^2``.

    ``d_music`` is the bar's simu-note density re-measured from the music (:func:`bar_densities`;
    a bar the music does not reach counts as 0; music past the video is ignored), ``d_video`` the
    video's target (0..16). Dividing by the 16 density classes puts it in 0..1; the CMT paper
    reports 0.107.

    Args:
        midi: ``miditoolkit.MidiFile``.
        target_densities: the video's per-bar densities, ``[n_bars]``.

    Returns:
        float in 0..1.

    Raises:
        InputError: empty or out-of-range targets.
    """
    target = np.asarray(target_densities, dtype=float)
    if target.ndim != 1 or target.size == 0 or target.min() < 0 or target.max() > MAX_DENSITY:
        raise InputError(f"target densities must be a non-empty list of values in 0..{MAX_DENSITY}")
    music = bar_densities(grid_notes(midi), len(target))
    return float(np.mean(((music - target) / MAX_DENSITY) ** 2))


def _beats_array(visual_beats):
    """``(tick, strength)`` pairs as an int array ``[n, 2]``; raises InputError if malformed."""
    if not len(visual_beats):
        return np.zeros((0, 2), dtype=int)
    beats = np.asarray(visual_beats, dtype=float)
    if beats.ndim != 2 or beats.shape[1] != 2:
        raise InputError("visual beats must be (tick, strength) pairs")
    if (beats[:, 0] < 0).any() or (beats[:, 1] < 0).any():
        raise InputError("visual beats must be (tick, strength) pairs with non-negative values")
    return beats.astype(int)


def strength_error(midi, visual_beats, n_bars, strength_max=MAX_STRENGTH):
    """Strength control error, the masked MSE of the paper's matching score:
    ``mean over all n_bars*16 ticks of (1[s_video > 0] * (s_music - s_video) / strength_max)^2``.

    ``s_video`` is the visual-beat strength at a tick (0 where there is no beat), ``s_music`` the
    number of notes starting at that tick (:func:`tick_strengths`, clipped to ``strength_max``).
    Only ticks with a visual beat contribute, averaged over all ticks (METHOD.md §5:
    ``MSE(s_music * 1(s_video), s_video)``); the mean over beats alone is this value times
    ``n_ticks / n_beats``. The CMT paper reports 0.001.

    Args:
        midi: ``miditoolkit.MidiFile``.
        visual_beats: ``(tick, strength)`` pairs, absolute grid ticks.
        n_bars: the video's bar count (sets the tick range).
        strength_max: strength normaliser (the tokens' maximum strength, 24).

    Returns:
        float in 0..1.

    Raises:
        InputError: malformed beats or ``n_bars`` < 1.
    """
    if n_bars < 1:
        raise InputError(f"n_bars must be >= 1, got {n_bars}")
    beats = _beats_array(visual_beats)
    n_ticks = n_bars * TICKS_PER_BAR
    beats = beats[(beats[:, 0] < n_ticks) & (beats[:, 1] > 0)]
    music = np.minimum(tick_strengths(grid_notes(midi), n_ticks), strength_max)
    diff = (music[beats[:, 0]] - np.minimum(beats[:, 1], strength_max)) / strength_max
    return float(np.sum(diff ** 2) / n_ticks)


def time_error(midi, visual_beats, duration_s, tempo_bpm):
    """Time control error: ``mean over visual beats of |t_onset - t_beat| / duration_s``.

    ``t_beat = tick * 60 / (4 * tempo_bpm)``; ``t_onset`` is the music's note onset (any note, in
    seconds from the file's tempo map) nearest to it. 0 when every visual beat carries a note (and
    the music plays at the video's tempo); a beat in a silence counts the full distance to the
    nearest onset. The CMT paper
    reports 0.028.

    Args:
        midi: ``miditoolkit.MidiFile``.
        visual_beats: ``(tick, strength)`` pairs.
        duration_s: video duration, seconds (> 0).
        tempo_bpm: the video's tempo (> 0).

    Returns:
        float >= 0; ``nan`` without visual beats or without notes.

    Raises:
        InputError: non-positive duration or tempo, malformed beats.
    """
    _check_positive(duration_s, "video duration")
    _check_positive(tempo_bpm, "video tempo")
    beats = _beats_array(visual_beats)
    onsets = np.unique(grid_notes(midi).start_s)
    if not len(beats) or not onsets.size:
        return float("nan")
    beat_s = beats[:, 0] * _tick_seconds(tempo_bpm)
    return float(np.mean(_nearest_distance(beat_s, onsets)) / duration_s)


# ---------------------------------------------------------------- rhythm alignment


def _check_positive(value, what):
    if not value > 0:
        raise InputError(f"{what} must be positive, got {value}")


def _tick_seconds(tempo_bpm):
    """Length of one grid tick (a 16th note) in seconds."""
    return 60.0 / (tempo_bpm * TICKS_PER_BEAT)


def _nearest_distance(times, targets):
    """For each of ``times``, the distance to the nearest of the sorted ``targets``."""
    if len(targets) == 1:
        return np.abs(times - targets[0])
    idx = np.clip(np.searchsorted(targets, times), 1, len(targets) - 1)
    return np.minimum(np.abs(times - targets[idx - 1]), np.abs(times - targets[idx]))


def strong_onset_times(midi, quantile=0.75):
    """Onset times of the music's strong ticks, seconds, sorted.

    A tick is strong when the number of notes starting on it (drums included) is at least the
    ``quantile`` of that count over the piece's onset ticks; its time is its earliest note's
    onset. With ``quantile=0`` every onset tick counts.

    Args:
        midi: ``miditoolkit.MidiFile``.
        quantile: 0..1.

    Returns:
        float array of seconds.
    """
    if not 0 <= quantile <= 1:
        raise InputError(f"quantile must be in 0..1, got {quantile}")
    notes = grid_notes(midi)
    ticks, first, counts = np.unique(notes.tick, return_index=True, return_counts=True)
    if not ticks.size:
        return np.zeros(0)
    earliest = np.minimum.reduceat(notes.start_s, first)  # notes are sorted by tick
    return np.sort(earliest[counts >= np.quantile(counts, quantile)])


def video_event_times(visual_beats, cuts, tempo_bpm, merge_s):
    """Visual-beat times (``tick * 60 / (4 * tempo)``) and cut times as one sorted array; an
    event within ``merge_s`` of the previous kept one (a cut on a beat) is dropped."""
    beats = _beats_array(visual_beats)
    beat_s = beats[:, 0] * _tick_seconds(tempo_bpm)
    times = np.sort(np.concatenate([beat_s, np.asarray(cuts, dtype=float).reshape(-1)]))
    kept = []
    for t in times:
        if not kept or t - kept[-1] > merge_s:
            kept.append(t)
    return np.asarray(kept)


def _match_count(reference, estimate, tolerance):
    """Size of a maximum one-to-one matching of two sorted time lists within ``tolerance``
    (greedy over the sorted lists is optimal in one dimension)."""
    i = j = matched = 0
    while i < len(reference) and j < len(estimate):
        if abs(reference[i] - estimate[j]) <= tolerance:
            matched, i, j = matched + 1, i + 1, j + 1
        elif estimate[j] < reference[i]:
            j += 1
        else:
            i += 1
    return matched


def onset_alignment(midi, visual_beats, cuts, tempo_bpm, tolerance_ticks=1, quantile=0.75):
    """Onset precision, recall and F1 of the music's strong onsets against the video's events.

    Music events: :func:`strong_onset_times` (notes-per-tick at or above the piece's
    ``quantile``). Video events: visual beats and cuts (:func:`video_event_times`, merged within
    the tolerance). A one-to-one match needs ``|t_music - t_video| <= tolerance_ticks`` grid ticks,
    i.e. ``tolerance_ticks * 15 / tempo_bpm`` s (±0.125 s at 120 BPM for the default ±1 tick).

    Args:
        midi: ``miditoolkit.MidiFile``.
        visual_beats: ``(tick, strength)`` pairs.
        cuts: cut times, seconds.
        tempo_bpm: the video's tempo (> 0).
        tolerance_ticks: match tolerance in grid ticks.
        quantile: strong-onset quantile.

    Returns:
        dict with ``precision``, ``recall``, ``f1`` (0..1; ``nan`` where a denominator is 0) and
        ``tolerance_s``.
    """
    _check_positive(tempo_bpm, "video tempo")
    tolerance = tolerance_ticks * _tick_seconds(tempo_bpm)
    music = strong_onset_times(midi, quantile)
    video = video_event_times(visual_beats, cuts, tempo_bpm, tolerance)
    matched = _match_count(video, music, tolerance + 1e-9)
    precision = matched / len(music) if len(music) else float("nan")
    recall = matched / len(video) if len(video) else float("nan")
    f1 = 2 * matched / (len(music) + len(video)) if len(music) + len(video) else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "tolerance_s": tolerance}


def beat_align_score(midi, visual_beats, cuts, tempo_bpm, sigma_s=0.1, quantile=0.75):
    """BeatAlign-style score (the Beat Align Score of AIST++ / Bailando, with the video as the
    reference): ``mean over video events of exp(-d^2 / (2 sigma_s^2))``, ``d`` = distance in
    seconds to the nearest strong music onset.

    Args:
        midi: ``miditoolkit.MidiFile``.
        visual_beats: ``(tick, strength)`` pairs.
        cuts: cut times, seconds.
        tempo_bpm: the video's tempo (> 0).
        sigma_s: Gaussian width, seconds (0.1 s by default).
        quantile: strong-onset quantile (:func:`strong_onset_times`).

    Returns:
        float in 0..1 (1: every event has a strong onset on it); ``nan`` without video events or
        music onsets.
    """
    _check_positive(tempo_bpm, "video tempo")
    _check_positive(sigma_s, "sigma_s")
    music = strong_onset_times(midi, quantile)
    video = video_event_times(visual_beats, cuts, tempo_bpm, 0.0)
    if not music.size or not video.size:
        return float("nan")
    d = _nearest_distance(video, music)
    return float(np.mean(np.exp(-(d ** 2) / (2 * sigma_s ** 2))))


def length_error(midi, duration_s):
    """Length error in seconds: the music's end (last note offset) minus the video's duration;
    positive when the music runs longer. ``-duration_s`` for music without notes."""
    _check_positive(duration_s, "video duration")
    ends = grid_notes(midi).end_s
    return float((ends.max() if ends.size else 0.0) - duration_s)


def evaluate(midi, target_densities, visual_beats, cuts, duration_s, tempo_bpm, structure=True):
    """All metrics of one piece scored for one video, paper-style settings.

    Args:
        midi: ``miditoolkit.MidiFile``.
        target_densities: the video's per-bar densities.
        visual_beats: ``(tick, strength)`` pairs.
        cuts: cut times, seconds.
        duration_s: video duration, seconds.
        tempo_bpm: video tempo.
        structure: compute ``structureness`` too (superlinear in length: ~25 s for a 10-minute
            piece here, so scoring leaves it to `vbgm eval`).

    Returns:
        dict of floats: ``pitch_entropy``, ``groove_similarity``, ``structureness``,
        ``density_error``, ``strength_error``, ``time_error``, ``onset_precision``,
        ``onset_recall``, ``onset_f1``, ``beat_align``, ``length_error_s`` (no
        ``structureness`` when ``structure`` is False).
    """
    align = onset_alignment(midi, visual_beats, cuts, tempo_bpm)
    si = {"structureness": structureness(midi)} if structure else {}
    return {
        "pitch_entropy": pitch_class_entropy(midi),
        "groove_similarity": grooving_similarity(midi),
        **si,
        "density_error": density_error(midi, target_densities),
        "strength_error": strength_error(midi, visual_beats, len(target_densities)),
        "time_error": time_error(midi, visual_beats, duration_s, tempo_bpm),
        "onset_precision": align["precision"],
        "onset_recall": align["recall"],
        "onset_f1": align["f1"],
        "beat_align": beat_align_score(midi, visual_beats, cuts, tempo_bpm),
        "length_error_s": length_error(midi, duration_s),
    }
