"""The evaluation's two rows that are not the model: the training song that best matches the
video (``matched``) and the MusDr metrics of held-out songs (``reference``)."""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..metrics.musdr import grooving_similarity, pitch_class_entropy, structureness
from ..music.tokenizer import (
    BAR,
    EOS,
    TICKS_PER_BAR,
    TYPE,
    CPTokenizer,
    bar_densities,
    onset_strengths,
)
from ..scorer import clip_midi
from .report import json_number

MS_EPS = 1e-6  # a perfect match scores 1 / MS_EPS instead of infinity


# ---------------------------------------------------------------- matching score


def video_targets(rhythm):
    """The video's per-bar densities ``[V]`` and per-tick strengths ``[16 V]`` (0 where it has no
    visual beat), as the sampler sees them (:meth:`vbgm_core.music.sampler.Targets.from_rhythm`)."""
    from ..music.sampler import Targets  # imports torch: only when a video is matched

    targets = Targets.from_rhythm(rhythm)
    strengths = np.zeros(targets.n_bars * TICKS_PER_BAR)
    for tick, strength in targets.beats.items():
        strengths[tick] = strength
    return np.asarray(targets.densities, dtype=float), strengths


def song_targets(tokens):
    """A song's per-bar densities ``[n]`` and per-tick strengths ``[16 n]`` from its tokens."""
    densities = bar_densities(tokens).astype(float)
    strengths = np.zeros(len(densities) * TICKS_PER_BAR)
    onsets = onset_strengths(tokens)
    strengths[onsets[:, 0]] = onsets[:, 1]
    return densities, strengths


def matching_score(d_music, s_music, d_video, s_video):
    """``MS = 1 / (MSE(d_music, d_video) + MSE(s_music ⊙ 1(s_video), s_video))`` (METHOD.md §5).

    Args:
        d_music, d_video: per-bar densities, same length.
        s_music, s_video: per-tick strengths, same length; ``s_video`` is 0 off the visual beats,
            so only the music's strengths on the video's beats count.

    Returns:
        The score; a perfect match gives the largest, ``1 / MS_EPS``.
    """
    d_music, d_video = np.asarray(d_music, float), np.asarray(d_video, float)
    s_music, s_video = np.asarray(s_music, float), np.asarray(s_video, float)
    if d_music.shape != d_video.shape or s_music.shape != s_video.shape:
        raise InputError("matching score: music and video targets differ in length")
    err = np.mean((d_music - d_video) ** 2) + np.mean((s_music * (s_video > 0) - s_video) ** 2)
    return float(1.0 / (err + MS_EPS))


def window_scores(d_song, s_song, d_video, s_video):
    """Matching score of every whole-bar window of a song against the video.

    A song shorter than the video is padded with empty bars (one window, at offset 0).

    Returns:
        float array ``[n_offsets]``: entry o scores song bars ``o .. o + V - 1``.
    """
    n_bars = len(d_video)
    if len(d_song) < n_bars:
        d_song = np.pad(d_song, (0, n_bars - len(d_song)))
        s_song = np.pad(s_song, (0, n_bars * TICKS_PER_BAR - len(s_song)))
    windows = np.lib.stride_tricks.sliding_window_view(d_song, n_bars)      # [n_off, V]
    d_mse = ((windows - d_video) ** 2).mean(axis=1)
    beats = np.flatnonzero(s_video)
    # Off the video's beats both sides are 0 after the mask: only the beat ticks add error.
    ticks = TICKS_PER_BAR * np.arange(len(windows))[:, None] + beats[None, :]  # [n_off, k]
    s_mse = ((s_song[ticks] - s_video[beats]) ** 2).sum(axis=1) / len(s_video)
    return 1.0 / (d_mse + s_mse + MS_EPS)


@dataclass
class Match:
    """The best (song, offset) for a video."""

    song: int        # dataset row
    offset_bars: int
    score: float


def best_match(songs, d_video, s_video):
    """Maximise the matching score over songs and whole-bar offsets (first best on ties).

    Args:
        songs: ``{dataset row: (densities, strengths)}`` from :func:`song_targets`.
        d_video, s_video: from :func:`video_targets`.

    Returns:
        :class:`Match`.
    """
    best = Match(-1, 0, -math.inf)
    for row, (d_song, s_song) in songs.items():
        scores = window_scores(d_song, s_song, d_video, s_video)
        offset = int(np.argmax(scores))
        if scores[offset] > best.score:
            best = Match(row, offset, float(scores[offset]))
    return best


def song_window(tokens, offset_bars, n_bars):
    """Tokens of bars ``offset .. offset + n_bars - 1`` of a song (empty bars past its end),
    closed by EOS: a valid piece of exactly ``n_bars`` bars."""
    tokens = np.asarray(tokens)
    starts = np.flatnonzero(tokens[:, TYPE] == BAR)
    end_of_song = int(np.flatnonzero(tokens[:, TYPE] == EOS)[0])
    bounds = list(starts) + [end_of_song]
    first, last = offset_bars, min(offset_bars + n_bars, len(starts))
    body = tokens[bounds[first]:bounds[last]]
    empty = np.zeros((n_bars - (last - first), tokens.shape[1]), dtype=tokens.dtype)
    empty[:, TYPE], empty[:, 2] = BAR, 1  # density column: 0 onsets + 1
    eos = np.zeros((1, tokens.shape[1]), dtype=tokens.dtype)
    eos[0, TYPE] = EOS
    return np.concatenate([body, empty, eos])


# ---------------------------------------------------------------- the matched baseline


def candidate_songs(dataset, progress):
    """The matched baseline's candidates: ``{row: song_targets}`` of every training song.

    Args:
        dataset: ``TokenDataset``.
        progress: callable(fraction), every 100 songs and at the end.
    """
    songs = {}
    rows = dataset.split_ids("train")
    for k, row in enumerate(rows):
        songs[row] = song_targets(dataset.song(row))
        if k % 100 == 0:
            progress(k / len(rows))
    progress(1.0)
    return songs


def matched_piece(dataset, candidates, rhythm):
    """The best-matching window of the candidate songs, as a piece for the video.

    Returns:
        (tokens, MIDI decoded at the video's tempo and cut at its end, the run's facts: the
        song's path, the bar offset and the matching score).
    """
    match = best_match(candidates, *video_targets(rhythm))
    tokens = song_window(dataset.song(match.song), match.offset_bars, rhythm.n_bars)
    midi = clip_midi(CPTokenizer().decode(tokens, rhythm.tempo_bpm), rhythm.duration_s,
                     rhythm.tempo_bpm)
    facts = {"match_song": dataset.index[match.song]["path"],
             "match_offset_bars": match.offset_bars, "matching_score": json_number(match.score)}
    return tokens, midi, facts


# ---------------------------------------------------------------- the reference row


def reference_metrics(dataset, n_songs):
    """MusDr metrics of up to ``n_songs`` held-out songs (evenly spaced over the test split;
    the valid split, then train, when a small dataset has none), whole songs at their tempo.

    Returns:
        (split used, list of per-song dicts with ``song``, ``path`` and the MusDr metrics).
    """
    split, rows = next(((s, dataset.split_ids(s)) for s in ("test", "valid", "train")
                        if dataset.split_ids(s)))
    if len(rows) > n_songs:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, n_songs).round().astype(int)]
    out = []
    for row in rows:
        info = dataset.index[row]
        midi = CPTokenizer().decode(dataset.song(row), info["tempo_bpm"])
        out.append({"song": row, "path": info["path"],
                    "pitch_entropy": json_number(pitch_class_entropy(midi)),
                    "groove_similarity": json_number(grooving_similarity(midi)),
                    "structureness": json_number(structureness(midi))})
    return split, out
