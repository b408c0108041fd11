"""Music read on the project's grid, for measuring it.

Music is a ``miditoolkit.MidiFile``; notes are read on the tokens' grid (DESIGN.md: 4 ticks per
beat, 16 per bar; like the tokens, every bar is taken as 4/4 whatever the time signature),
``grid tick = round(midi_tick / (ticks_per_beat / 4))``. Everything is deterministic.
"""

from typing import NamedTuple

import numpy as np

from ..errors import InputError
from ..music.tokenizer import TICKS_PER_BAR, TICKS_PER_BEAT  # the tokens' grid

MAX_DENSITY = TICKS_PER_BAR  # density classes: distinct onset ticks in a bar, 0..16
DEFAULT_TEMPO_BPM = 120.0  # MIDI's default when a file has no tempo event


class GridNotes(NamedTuple):
    """The notes of a piece on the 16th-note grid, one array entry per note, sorted by onset."""

    tick: np.ndarray  # int, absolute grid tick of the onset
    pitch: np.ndarray  # int, MIDI pitch
    is_drum: np.ndarray  # bool
    start_s: np.ndarray  # float, onset in seconds (from the file's tempo map)
    end_s: np.ndarray  # float, offset in seconds
    velocity: np.ndarray  # int


def ticks_to_seconds(midi, ticks):
    """Convert MIDI ticks to seconds with the file's tempo map.

    Args:
        midi: ``miditoolkit.MidiFile``.
        ticks: array-like of MIDI ticks (any shape).

    Returns:
        float array of seconds, same shape. Before the first tempo event, and in files without
        one, the tempo is 120 BPM (the MIDI default); of several events on one tick the last wins.
    """
    ticks = np.asarray(ticks, dtype=float)
    tempo_at = {0: DEFAULT_TEMPO_BPM}
    for change in sorted(midi.tempo_changes, key=lambda t: t.time):
        tempo_at[change.time] = change.tempo
    starts = np.asarray(sorted(tempo_at), dtype=float)
    sec_per_tick = np.asarray([60.0 / (tempo_at[t] * midi.ticks_per_beat) for t in sorted(tempo_at)])
    seg_start_s = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
    seg = np.searchsorted(starts, ticks, side="right") - 1
    return seg_start_s[seg] + (ticks - starts[seg]) * sec_per_tick[seg]


def grid_notes(midi):
    """Read every note of ``midi`` onto the 16th-note grid.

    Args:
        midi: ``miditoolkit.MidiFile``; drums are instruments with ``is_drum``.

    Returns:
        :class:`GridNotes`, sorted by (tick, pitch).

    Raises:
        InputError: ``ticks_per_beat`` is not positive, or a note starts before tick 0.
    """
    if midi.ticks_per_beat <= 0:
        raise InputError(f"MIDI ticks_per_beat must be positive, got {midi.ticks_per_beat}")
    rows = [(n.start, n.end, n.pitch, inst.is_drum, n.velocity)
            for inst in midi.instruments for n in inst.notes]
    start, end, pitch, drum, vel = (np.asarray(c) for c in zip(*rows)) if rows else ([],) * 5
    start = np.asarray(start, dtype=float)
    if (start < 0).any():
        raise InputError("MIDI has a note with a negative start tick")
    tick = np.round(start / (midi.ticks_per_beat / TICKS_PER_BEAT)).astype(int)
    pitch = np.asarray(pitch, dtype=int)
    order = np.lexsort((pitch, tick))
    return GridNotes(
        tick=tick[order],
        pitch=pitch[order],
        is_drum=np.asarray(drum, dtype=bool)[order],
        start_s=ticks_to_seconds(midi, start)[order],
        end_s=ticks_to_seconds(midi, np.asarray(end, dtype=float))[order],
        velocity=np.asarray(vel, dtype=int)[order],
    )


def bar_densities(notes, n_bars=None):
    """Simu-note density per bar: the number of distinct onset ticks (0..16), drums included.

    Args:
        notes: :class:`GridNotes`.
        n_bars: number of bars to return; default: up to the bar of the last onset.

    Returns:
        int array ``[n_bars]``. Onsets past ``n_bars`` are ignored.
    """
    if n_bars is None:
        n_bars = int(notes.tick.max()) // TICKS_PER_BAR + 1 if notes.tick.size else 0
    onsets = np.unique(notes.tick)
    onsets = onsets[onsets < n_bars * TICKS_PER_BAR]
    return np.bincount(onsets // TICKS_PER_BAR, minlength=n_bars).astype(int)


def tick_strengths(notes, n_ticks=None):
    """Simu-note strength per grid tick: the number of notes (drums included) starting there.

    Args:
        notes: :class:`GridNotes`.
        n_ticks: length of the result; default: up to the last onset.

    Returns:
        int array ``[n_ticks]``.
    """
    if n_ticks is None:
        n_ticks = int(notes.tick.max()) + 1 if notes.tick.size else 0
    ticks = notes.tick[notes.tick < n_ticks]
    return np.bincount(ticks, minlength=n_ticks).astype(int)
