"""Re-roll from here: keep a previous take up to a time, bit for bit, and compose the rest anew.

The kept part ends on the first bar line at or after the requested time (a bar is the
model's unit, and a note cut mid-bar would be a new note). The model does not start over: the
previous take's kept bars are read back as tokens and run through it, so the new music
continues from the state the old music left, in the same key and groove. The MIDI before the
bar line is the previous take's own notes, velocities included; the new notes start at it.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import miditoolkit
import numpy as np

from ..errors import InputError, finite_number
from .instruments import GROUPS, track_group
from .tokenizer import BAR, EOS, MIDI_TICKS_PER_BEAT, CPTokenizer

BEATS_PER_BAR = 4


@dataclass
class KeptPrefix:
    """The part of a previous take that a re-roll keeps.

    Attributes:
        midi: the previous take.
        tokens: (N, 7) tokens of its first ``n_bars`` bars (no EOS), what the model runs through.
        n_bars: bars kept.
        tempo_bpm: the take's tempo (the new part keeps it: the same bar grid).
    """

    midi: miditoolkit.MidiFile
    tokens: np.ndarray
    n_bars: int
    tempo_bpm: float

    @property
    def boundary_s(self):
        """Where the new music starts, seconds from the start of the piece."""
        return self.n_bars * BEATS_PER_BAR * 60.0 / self.tempo_bpm

    @property
    def boundary_tick(self):
        return self.n_bars * BEATS_PER_BAR * self.midi.ticks_per_beat

    def continued_options(self, options):
        """``options`` for the new part: the take's tempo (the same bar grid), and its key,
        mode and instrument sounds where the options leave them to chance (the new part stays
        in the old key, played by the same instruments)."""
        changes = {"tempo": self.tempo_bpm}
        if options.programs is None:
            changes["programs"] = {track_group(i): i.program for i in self.midi.instruments
                                   if track_group(i) in GROUPS}
        if self.midi.key_signature_changes:
            name = self.midi.key_signature_changes[0].key_name   # "D" or "Dm" (harmony.py)
            if options.key == "auto":
                changes["key"] = name.rstrip("m")
            if options.mode == "auto":
                changes["mode"] = "minor" if name.endswith("m") else "major"
        return options.replace(**changes)


def load_prefix(path, keep_until_s):
    """Read a previous take (a MIDI file vbgm wrote) and the bars kept before ``keep_until_s``.

    Raises:
        InputError: unreadable file, not a vbgm take (tempo changes, another resolution), or a
            keep time that keeps nothing or everything.
    """
    path = Path(path)
    try:
        midi = miditoolkit.MidiFile(str(path))
    except Exception as e:  # miditoolkit raises whatever mido meets
        raise InputError(f"{path}: not a readable MIDI file ({e})") from None
    if len(midi.tempo_changes) != 1 or midi.ticks_per_beat != MIDI_TICKS_PER_BEAT:
        raise InputError(f"{path}: not a take written by vbgm (one tempo, "
                         f"{MIDI_TICKS_PER_BEAT} ticks per beat)")
    tempo = float(midi.tempo_changes[0].tempo)
    keep_until_s = finite_number(keep_until_s, "keep-until", "number of seconds")
    bar_s = BEATS_PER_BAR * 60.0 / tempo
    n_bars = math.ceil(keep_until_s / bar_s - 1e-9)
    last_onset = max((n.start for i in midi.instruments for n in i.notes), default=-1)
    total_bars = last_onset // (BEATS_PER_BAR * midi.ticks_per_beat) + 1   # bars with onsets
    if not 0 < n_bars < total_bars:
        raise InputError(f"{path}: keep-until {keep_until_s:g} s keeps "
                         f"{'nothing' if n_bars <= 0 else 'the whole take'} (the take has "
                         f"{total_bars} bars of {bar_s:.3f} s)")
    tokens = CPTokenizer().encode(midi, keep_leading_silence=True).tokens
    tokens = tokens[tokens[:, 0] != EOS]
    bars = np.flatnonzero(tokens[:, 0] == BAR)
    if len(bars) > n_bars:
        tokens = tokens[:bars[n_bars]]
    else:   # the take's last bars were silent: their bar tokens are implicit
        empty = np.zeros((n_bars - len(bars), tokens.shape[1]), tokens.dtype)
        empty[:, 0], empty[:, 2] = BAR, 1          # a bar of density 0
        tokens = np.concatenate([tokens, empty])
    return KeptPrefix(midi, tokens, n_bars, tempo)


def splice(prefix, new_midi):
    """The new take: the previous take's notes before the bar line, the new ones after it.

    Notes kept from the previous take keep their full length, even past the bar line (a held
    chord rings on into the new part as it did before).
    """
    boundary = prefix.boundary_tick
    assert new_midi.ticks_per_beat == prefix.midi.ticks_per_beat
    tracks = {}
    for inst in new_midi.instruments:
        tracks[inst.name, inst.is_drum] = inst
        inst.notes = [n for n in inst.notes if n.start >= boundary]
    for old in prefix.midi.instruments:
        kept = [n for n in old.notes if n.start < boundary]
        track = tracks.get((old.name, old.is_drum))
        if track is None:
            track = tracks[old.name, old.is_drum] = miditoolkit.Instrument(
                program=old.program, is_drum=old.is_drum, name=old.name)
            new_midi.instruments.append(track)
        track.notes = [miditoolkit.Note(n.velocity, n.pitch, n.start, n.end) for n in kept] \
            + track.notes
    new_midi.instruments = [i for i in new_midi.instruments if i.notes]
    return new_midi
