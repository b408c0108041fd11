"""How much a piece repeats itself: each bar's best match with an earlier bar.

A bar is its set of onsets ``(group, pitch, 16th position in the bar)`` (group = one of the
five instrument groups, so two tracks of one group playing the same note are one onset); two
bars are alike by their Jaccard similarity |A ∩ B| / |A ∪ B| (the measure Museformer used, see
``../shared/docs/FORM.md``). Drums and the pitched groups (piano, guitar, bass, strings) are
measured apart: a drummer repeats a groove, pitched parts repeat phrases.

The figures are taken over windows of ``window_bars`` consecutive bars (6 by default), the
look-back of a bar being the earlier bars of its window, so that a 16-bar piece and a 200-bar
song compare: real songs are measured on their middle window (``middle_window``), generated
pieces on consecutive windows from their first bar.

Empty bars: a bar with no onsets in the measured group is skipped, neither scored nor a match
for later bars (two silent bars are not repetition), and so is the first bar with onsets in a
window, which has nothing earlier to repeat. Every other bar scores its best Jaccard similarity
with the window's earlier non-empty bars.

Onsets sit on the tokenizer's grid: a note's start is rounded to 16ths with the file's
``ticks_per_beat``, bars are 16 sixteenths (4/4) counted from the file's tick 0.
"""

import math

import miditoolkit

from ..music.instruments import group_of
from ..music.tokenizer import TICKS_PER_BAR, TICKS_PER_BEAT

GROUP_KINDS = ("drums", "pitched")


def _sixteenth(tick, ticks_per_beat):
    return round(tick * TICKS_PER_BEAT / ticks_per_beat)


def _onsets(midi):
    """(sixteenth, group, pitch) of every note in the five groups."""
    for inst in midi.instruments:
        group = group_of(inst.program, inst.is_drum)
        if group is not None:
            for note in inst.notes:
                yield _sixteenth(note.start, midi.ticks_per_beat), group, note.pitch


def bar_onsets(midi, group="pitched"):
    """Each bar's onset set for one kind of group.

    Args:
        midi: miditoolkit.MidiFile.
        group: "drums" or "pitched" (piano, guitar, bass and strings together).

    Returns:
        list of frozensets of (group name, pitch, 16th position), one per bar from bar 0 to the
        last bar with an onset in any group (so drums and pitched parts share the bar count).
    """
    if group not in GROUP_KINDS:
        raise ValueError(f"group must be one of {GROUP_KINDS}, not {group!r}")
    onsets = list(_onsets(midi))
    n_bars = max((t // TICKS_PER_BAR for t, _, _ in onsets), default=-1) + 1
    bars = [set() for _ in range(n_bars)]
    for tick, name, pitch in onsets:
        if (name == "drums") == (group == "drums"):
            bars[tick // TICKS_PER_BAR].add((name, pitch, tick % TICKS_PER_BAR))
    return [frozenset(b) for b in bars]


def jaccard(a, b):
    """|a ∩ b| / |a ∪ b| of two sets (0 when both are empty)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def best_matches(midi, group="pitched", window_bars=6):
    """Each scored bar's best Jaccard similarity with an earlier bar of its window.

    Windows are consecutive and whole: bars 0..w-1, w..2w-1, ...; the bars after the last whole
    window are left out, except that a piece shorter than one window is one window.

    Args:
        midi: miditoolkit.MidiFile.
        group: "drums" or "pitched".
        window_bars: bars per window (the look-back).

    Returns:
        list of floats in 0..1, one per scored bar (see the module's note on empty bars).
    """
    bars = bar_onsets(midi, group)
    starts = range(0, len(bars) - window_bars + 1, window_bars) if len(bars) >= window_bars else [0]
    scores = []
    for start in starts:
        earlier = []
        for bar in bars[start:start + window_bars]:
            if not bar:
                continue
            if earlier:
                scores.append(max(jaccard(bar, e) for e in earlier))
            earlier.append(bar)
    return scores


def repetition(midi, group="pitched", window_bars=6):
    """Mean best match of a bar with an earlier bar of its window (``best_matches``).

    Returns:
        float in 0..1; NaN when no bar is scored (the group plays in fewer than two bars of
        every window), so that averages over pieces can skip it (``numpy.nanmean``).
    """
    scores = best_matches(midi, group, window_bars)
    return sum(scores) / len(scores) if scores else math.nan


def exact_copy_share(midi, group="pitched", window_bars=6):
    """Share of scored bars whose onset set equals an earlier non-empty bar's of the window.

    Returns:
        float in 0..1; NaN when no bar is scored.
    """
    scores = best_matches(midi, group, window_bars)
    return sum(s == 1.0 for s in scores) / len(scores) if scores else math.nan


def middle_window(midi, bars=6):
    """The ``bars`` bars in the middle of a song, as a MidiFile of their own.

    The middle is taken between the first and the last bar with an onset in the five groups;
    a song with fewer bars is kept whole. Notes are chosen by the bar of their rounded onset and
    moved back by whole bars, so the window's bars are the song's bars.

    Args:
        midi: miditoolkit.MidiFile (any ticks_per_beat).
        bars: window length in bars.

    Returns:
        miditoolkit.MidiFile with the same ticks_per_beat, 4/4, the tempo in force at the
        window's start, and the song's tracks that play in the window.
    """
    song_bars = sorted({t // TICKS_PER_BAR for t, _, _ in _onsets(midi)})
    window = miditoolkit.MidiFile(ticks_per_beat=midi.ticks_per_beat)
    if not song_bars:
        return window
    first, last = song_bars[0], song_bars[-1]
    start = first + max(0, (last - first + 1 - bars) // 2)
    bar_ticks = TICKS_PER_BAR // TICKS_PER_BEAT * midi.ticks_per_beat
    shift = start * bar_ticks
    tempos = [t for t in midi.tempo_changes if t.time <= shift] or midi.tempo_changes[:1]
    window.tempo_changes = [miditoolkit.TempoChange(tempos[-1].tempo, 0)] if tempos else []
    window.time_signature_changes = [miditoolkit.TimeSignature(4, 4, 0)]
    for inst in midi.instruments:
        # max(0, ...): a note just before the window's first bar line rounds onto it
        notes = [miditoolkit.Note(n.velocity, n.pitch, max(0, n.start - shift), n.end - shift)
                 for n in inst.notes
                 if start <= _sixteenth(n.start, midi.ticks_per_beat) // TICKS_PER_BAR < start + bars]
        if notes:
            window.instruments.append(miditoolkit.Instrument(
                program=inst.program, is_drum=inst.is_drum, name=inst.name, notes=notes))
    window.max_tick = bars * bar_ticks
    return window
