"""Symbolic features of a short excerpt (16 bars) for an independent genre classifier.

What tells genres apart when you listen, read from the compound-word tokens alone (no tempo,
no velocity: the tokens have neither): the drum pattern (where in the bar the drums, the kick
and the snare hit, and which drums are used), how busy and how polyphonic each instrument is,
its register, the chord vocabulary (pitch-class sets heard per beat), syncopation, note lengths
and which instruments play. Pure numpy and deterministic; scripts/genre_classifier.py trains a
classifier on them (docs/GENRE.md).

A feature that is undefined for an excerpt (the register of an instrument that does not play,
the drum-kit shares without drums) is NaN; the classifier imputes it and the presence features
carry the absence.
"""

import numpy as np

from ..music.instruments import GROUP_ID, GROUPS
from ..music.tokenizer import (
    BAR,
    BEAT,
    BEAT_T,
    DURATION,
    EOS,
    INSTRUMENT,
    MAX_DURATION,
    NOTE,
    PITCH,
    TICKS_PER_BAR,
    TICKS_PER_BEAT,
    TYPE,
)

PITCHED = GROUPS[1:]
DRUMS = GROUP_ID["drums"]

# General MIDI percussion keys by the role they play in a kit.
DRUM_KIT = {"kick": (35, 36), "snare": (37, 38, 39, 40), "hihat": (42, 44, 46),
            "ride": (51, 53, 59), "crash": (49, 52, 55, 57), "tom": (41, 43, 45, 47, 48, 50)}

# Chord shapes as intervals above a root; a beat's pitch-class set "has" a shape when the shape
# fits inside it at some root (a melody note on top does not hide the chord).
TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}
SEVENTHS = ((0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10), (0, 3, 6, 10))
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)   # its 12 rotations are every major and natural minor key
# A note of MAX_DURATION ticks starting anywhere in a beat touches at most this many beats.
MAX_BEATS_SPANNED = MAX_DURATION // TICKS_PER_BEAT + 1

FEATURE_NAMES = (
    tuple(f"present_{g}" for g in GROUPS)
    + tuple(f"onsets_per_bar_{g}" for g in GROUPS)
    + tuple(f"notes_per_onset_{g}" for g in PITCHED)
    + tuple(f"pitch_mean_{g}" for g in PITCHED)
    + tuple(f"pitch_range_{g}" for g in PITCHED)
    + tuple(f"log2_duration_{g}" for g in PITCHED)
    + ("short_note_share", "long_note_share")
    + tuple(f"drum_onset_{p}" for p in range(TICKS_PER_BAR))
    + tuple(f"kick_onset_{p}" for p in range(TICKS_PER_BAR))
    + tuple(f"snare_onset_{p}" for p in range(TICKS_PER_BAR))
    + tuple(f"drum_share_{k}" for k in DRUM_KIT) + ("drum_share_other",)
    + ("offbeat_share_drums", "odd16th_share_drums", "offbeat_share_pitched",
       "odd16th_share_pitched")
    + ("chord_single", "chord_power", "chord_major", "chord_minor", "chord_seventh",
       "chord_semitone", "pcs_per_beat", "chord_change", "pcs_per_bar", "pc_entropy",
       "out_of_scale")
    + ("bar_density_mean", "bar_density_std")
)


class Notes:
    """The notes of a token array: bar, tick in bar, absolute start tick, instrument group id,
    MIDI pitch (GM key for drums) and duration in ticks, one entry per note token."""

    def __init__(self, tokens):
        tokens = np.asarray(tokens)
        kind = tokens[:, TYPE]
        self.n_bars = int((kind == BAR).sum())
        bar = np.cumsum(kind == BAR) - 1
        rows = np.arange(len(kind))
        anchor = np.maximum.accumulate(np.where(kind == BEAT_T, rows, 0))  # the note's beat token
        note = kind == NOTE
        self.bar = bar[note]
        self.tick = tokens[anchor[note], BEAT] - 1
        self.start = self.bar * TICKS_PER_BAR + self.tick
        self.instrument = tokens[note, INSTRUMENT]
        self.pitch = tokens[note, PITCH] - 1
        self.duration = tokens[note, DURATION]


def window_starts(n_bars, length, count):
    """First bars of up to ``count`` windows of ``length`` bars spread evenly over a song of
    ``n_bars`` (no more windows than fit side by side; none if the song is shorter)."""
    n = min(count, n_bars // length)
    if n == 0:
        return []
    return [int(s) for s in np.rint(np.linspace(0, n_bars - length, n))]


def bar_window(tokens, start, length):
    """The tokens of bars ``start .. start + length - 1``, closed with EOS."""
    tokens = np.asarray(tokens)
    bars = np.flatnonzero(tokens[:, TYPE] == BAR)
    end = bars[start + length] if start + length < len(bars) else np.flatnonzero(tokens[:, TYPE] == EOS)[0]
    return np.concatenate([tokens[bars[start]:end], [[EOS, 0, 0, 0, 0, 0, 0]]])


def excerpt_features(tokens):
    """Feature vector (float64, ``len(FEATURE_NAMES)``) of an excerpt's tokens."""
    notes = Notes(tokens)
    n_bars = max(notes.n_bars, 1)
    values = {}
    _instruments(notes, n_bars, values)
    _drums(notes, n_bars, values)
    _syncopation(notes, values)
    _harmony(notes, n_bars, values)
    onsets = np.unique(notes.start)
    per_bar = np.bincount(onsets // TICKS_PER_BAR, minlength=n_bars)[:n_bars] / TICKS_PER_BAR
    values["bar_density_mean"], values["bar_density_std"] = per_bar.mean(), per_bar.std()
    return np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)


def _instruments(notes, n_bars, values):
    for group in GROUPS:
        mine = notes.instrument == GROUP_ID[group]
        onsets = len(np.unique(notes.start[mine]))
        values[f"present_{group}"] = float(mine.any())
        values[f"onsets_per_bar_{group}"] = np.log1p(onsets / n_bars)
        if group == "drums":
            continue
        pitch = notes.pitch[mine]
        played = len(pitch) > 0
        values[f"notes_per_onset_{group}"] = len(pitch) / onsets if played else np.nan
        values[f"pitch_mean_{group}"] = pitch.mean() if played else np.nan
        # 5th-95th percentile: one stray note does not make a range.
        values[f"pitch_range_{group}"] = np.subtract(*np.percentile(pitch, [95, 5])) if played else np.nan
        values[f"log2_duration_{group}"] = np.log2(notes.duration[mine]).mean() if played else np.nan
    pitched = notes.instrument != DRUMS
    durations = notes.duration[pitched]
    values["short_note_share"] = (durations <= 2).mean() if len(durations) else np.nan
    values["long_note_share"] = (durations >= 8).mean() if len(durations) else np.nan


def _pattern(notes, which, n_bars):
    """Share of bars with an onset of the ``which`` notes at each of the 16 positions."""
    hits = np.zeros((n_bars, TICKS_PER_BAR), bool)
    hits[notes.bar[which], notes.tick[which]] = True
    return hits.mean(0)


def _drums(notes, n_bars, values):
    drums = notes.instrument == DRUMS
    kits = {k: drums & np.isin(notes.pitch, keys) for k, keys in DRUM_KIT.items()}
    for name, pattern in (("drum", _pattern(notes, drums, n_bars)),
                          ("kick", _pattern(notes, kits["kick"], n_bars)),
                          ("snare", _pattern(notes, kits["snare"], n_bars))):
        for p in range(TICKS_PER_BAR):
            values[f"{name}_onset_{p}"] = pattern[p]
    n = drums.sum()
    for k, mask in kits.items():
        values[f"drum_share_{k}"] = mask.sum() / n if n else np.nan
    values["drum_share_other"] = 1 - sum(m.sum() for m in kits.values()) / n if n else np.nan


def _syncopation(notes, values):
    """Off-beat onsets (not on a quarter note) and onsets on odd 16ths (not on an 8th), among
    the distinct onset ticks of the drums and of the pitched instruments."""
    for name, which in (("drums", notes.instrument == DRUMS), ("pitched", notes.instrument != DRUMS)):
        ticks = np.unique(notes.start[which]) % TICKS_PER_BAR
        values[f"offbeat_share_{name}"] = (ticks % TICKS_PER_BEAT != 0).mean() if len(ticks) else np.nan
        values[f"odd16th_share_{name}"] = (ticks % 2 == 1).mean() if len(ticks) else np.nan


def _contains(sets, shape):
    """Which rows of the ``[n, 12]`` pitch-class sets hold ``shape`` at some root."""
    idx = (np.arange(12)[:, None] + np.asarray(shape)[None, :]) % 12   # [root, tone]
    return sets[:, idx].all(2).any(1)


def _harmony(notes, n_bars, values):
    """Chord vocabulary: the pitch classes heard during each beat (every pitched note that
    sounds at some tick of the beat, cut at the excerpt's end), and pitch-class statistics."""
    pitched = notes.instrument != DRUMS
    start, pitch = notes.start[pitched], notes.pitch[pitched]
    end = np.minimum(start + notes.duration[pitched], n_bars * TICKS_PER_BAR)
    n_beats = n_bars * TICKS_PER_BAR // TICKS_PER_BEAT
    sets = np.zeros((n_beats, 12), bool)
    first = start // TICKS_PER_BEAT
    for j in range(MAX_BEATS_SPANNED):
        beat = first + j
        on = beat * TICKS_PER_BEAT < end
        sets[beat[on], pitch[on] % 12] = True
    size = sets.sum(1)
    heard = sets[size > 0]
    n = len(heard)
    shares = {
        "chord_single": size[size > 0] == 1,
        "chord_power": (size[size > 0] == 2) & _contains(heard, (0, 7)),
        "chord_major": _contains(heard, TRIADS["major"]),
        "chord_minor": _contains(heard, TRIADS["minor"]),
        "chord_seventh": np.any([_contains(heard, s) for s in SEVENTHS], axis=0),
        "chord_semitone": _contains(heard, (0, 1)),
    }
    for name, hit in shares.items():
        values[name] = hit.mean() if n else np.nan
    values["pcs_per_beat"] = size[size > 0].mean() if n else np.nan
    both = (size[1:] > 0) & (size[:-1] > 0)
    changed = (sets[1:] != sets[:-1]).any(1)[both]
    values["chord_change"] = changed.mean() if len(changed) else np.nan
    bar_sets = sets.reshape(n_bars, -1, 12).any(1)
    values["pcs_per_bar"] = bar_sets.sum(1).mean()
    # Pitch classes weighted by how long they sound.
    histogram = np.bincount(pitch % 12, weights=end - start, minlength=12)
    total = histogram.sum()
    if total > 0:
        p = histogram[histogram > 0] / total
        values["pc_entropy"] = float(-(p * np.log2(p)).sum())
        in_scale = max(histogram[(np.array(MAJOR_SCALE) + r) % 12].sum() for r in range(12))
        values["out_of_scale"] = 1 - in_scale / total
    else:
        values["pc_entropy"] = values["out_of_scale"] = np.nan

