"""Note lengths after decoding: hold notes across long silences, ring the last chord out, close
on the tonic.

The tokens give every note its own duration, so a sparse passage can fall silent between two
onsets, and the piece used to stop wherever the video cut its last bar. Both are fixed on the
decoded MIDI, changing only note ends (onsets, and so every control measure, stay as sampled).
The sampler's prior leans the last bar towards the tonic triad, but softly: 6 of 50 pieces still
ended on another chord (issue 15). ``close_on_tonic`` makes the last chord the tonic triad by
moving the pitch of the few notes that spoil it (onsets untouched again).
"""

import numpy as np

from .harmony import triad
from .tokenizer import TICKS_PER_BAR, TICKS_PER_BEAT

MAX_GAP_S = 1.0  # a silence longer than this is bridged by holding the notes before it


def _ticks_per_second(midi):
    bpm = midi.tempo_changes[0].tempo if midi.tempo_changes else 120.0
    return bpm / 60.0 * midi.ticks_per_beat


def fill_silences(midi, max_gap_s=MAX_GAP_S):
    """Hold the last pitched notes before every silence longer than ``max_gap_s`` until the
    next onset (a legato join), in place. Drums count as sounding for their written length.

    Returns:
        the MidiFile.
    """
    max_gap = max_gap_s * _ticks_per_second(midi)
    pitched = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    every = sorted((n.start, n.end) for inst in midi.instruments for n in inst.notes)
    if not pitched or not every:
        return midi
    covered = every[0][1]
    for start, end in every[1:]:
        if start - covered > max_gap:
            before = [n for n in pitched if n.start < start]
            if before:
                last = max(n.end for n in before)
                for n in before:
                    if n.end == last:
                        n.end = start
        covered = max(covered, end, start)
    return midi


def ring_out(midi, duration_s, tonic=None, mode="major"):
    """Let the final bar's pitched notes ring to the video's last frame, in place.

    With a key (``tonic`` pitch class, ``mode``), only tonic-triad notes ring and any other
    note still sounding in the last beat is stopped a beat before the end, so the piece closes
    on the tonic chord. If the last bar has no pitched note, the last notes to sound ring.

    Returns:
        the MidiFile.
    """
    end = int(duration_s * _ticks_per_second(midi))  # floor: never past the video
    bar = TICKS_PER_BAR * midi.ticks_per_beat // TICKS_PER_BEAT
    beat = midi.ticks_per_beat
    pitched = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes
               if n.start < end]
    if not pitched:
        return midi
    chord = None if tonic is None else {(tonic + pc) % 12 for pc in triad(mode, 0)}

    def in_chord(n):
        return chord is None or n.pitch % 12 in chord

    final_bar = (end - 1) // bar * bar
    ringing = [n for n in pitched if n.start >= final_bar and in_chord(n)]
    if not ringing:
        last = max(n.end for n in pitched)
        ringing = [n for n in pitched if n.end == last and in_chord(n)]
    ringing = {id(n) for n in ringing}  # by identity: equal notes may sit in two tracks
    for n in pitched:
        if id(n) in ringing:
            n.end = end
        elif n.end > end - beat:
            n.end = int(np.clip(end - beat, n.start + 1, n.end))
    return midi


def close_on_tonic(midi, tonic, mode="major"):
    """Make the chord the piece ends on (the pitched notes that end last) the tonic triad with
    its root, in place: each ending note outside the triad moves to the nearest triad pitch, and
    if the root is still missing, the lowest ending note moves to the nearest root. Only
    pitches change (never onsets or lengths); a move that would double a note of the same track
    sounding at the same time takes the next nearest pitch. Drums are left alone.

    Returns:
        the MidiFile.
    """
    pitched = [(inst, n) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not pitched:
        return midi
    end = max(n.end for _, n in pitched)
    ending = sorted(((inst, n) for inst, n in pitched if n.end == end), key=lambda x: x[1].pitch)
    chord = {(tonic + pc) % 12 for pc in triad(mode, 0)}

    def move(inst, note, pcs):
        """Move ``note`` to the nearest pitch with a class in ``pcs`` (lower first on a tie)
        that no overlapping note of its track holds."""
        taken = {n.pitch for n in inst.notes
                 if n is not note and n.start < note.end and note.start < n.end}
        for step in sorted(range(-12, 13), key=lambda d: (abs(d), d > 0)):
            p = note.pitch + step
            if 0 <= p <= 127 and p % 12 in pcs and p not in taken:
                note.pitch = p
                return

    for inst, note in ending:
        if note.pitch % 12 not in chord:
            move(inst, note, chord)
    if tonic % 12 not in {n.pitch % 12 for _, n in ending}:
        move(*ending[0], {tonic % 12})
    return midi
