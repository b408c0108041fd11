"""Multi-track MIDI ⇄ compound-word (CP) tokens, as in the CMT paper (METHOD.md §2).

A token is 7 integers, one per attribute (``ATTRIBUTES``); 0 means "none" in every column.
The stream of a song is, bar by bar (empty bars included): a bar token carrying the bar's
density, then for every 16th-note tick with at least one onset a beat token (tick, density
countdown, strength = number of notes that follow) and its note tokens (instrument, pitch,
duration), sorted by instrument then pitch; an EOS token closes the song. See docs/DESIGN.md.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import miditoolkit
except ImportError:   # training needs only the token constants (scripts/train_gpu.sh: a GPU
    class _NoMiditoolkit:   # machine without miditoolkit); MIDI reading/writing then says why
        def __getattr__(self, name):
            raise ImportError("reading or writing MIDI needs miditoolkit (pip install miditoolkit)")
    miditoolkit = _NoMiditoolkit()

from ..errors import InputError
from .instruments import GROUP_ID, GROUPS, RENDER_PROGRAM, group_of, mask_of

ATTRIBUTES = ("type", "beat", "density", "strength", "instrument", "pitch", "duration")
TYPE, BEAT, DENSITY, STRENGTH, INSTRUMENT, PITCH, DURATION = range(7)

# Token types (column TYPE).
PAD, BAR, BEAT_T, NOTE, EOS = range(5)
TYPE_NAMES = ("pad", "bar", "beat", "note", "eos")

TICKS_PER_BEAT = 4          # the grid: 16th notes
TICKS_PER_BAR = 16          # 4/4 only
MAX_STRENGTH = 24           # notes kept per tick (more are dropped, highest pitches first)
MAX_DURATION = 32           # ticks (two bars); longer notes are cut
TIMING_BINS = 100           # beat-timing encoding M_t (METHOD.md §3): values 0..100
# Meters read on the 4/4 grid: 1/4 and 2/4 have the same quarter-note pulse, regrouped by four
# beats (POP909, for one, marks its 4/4 songs 1/4 or 2/4). Other meters are refused.
GRID_METERS = (1, 2, 4)
MAX_BARS = 1024             # ~34 min at 120 BPM: longer files are treated as broken

VOCAB_SIZES = (
    len(TYPE_NAMES),         # type
    TICKS_PER_BAR + 1,       # beat: tick + 1
    TICKS_PER_BAR + 2,       # density: bar density + 1 (0..16), beat countdown + 1 (1..16)
    MAX_STRENGTH + 1,        # strength
    len(GROUPS) + 1,         # instrument
    128 + 1,                 # pitch + 1
    MAX_DURATION + 1,        # duration in ticks
)

MIDI_TICKS_PER_BEAT = 480   # resolution of the files decode() writes
VELOCITY = {"drums": 96, "piano": 80, "guitar": 80, "bass": 88, "strings": 72}


@dataclass
class EncodedSong:
    """Tokens of one song and what the model does not see but rendering needs."""

    tokens: np.ndarray      # (N, 7) int64
    instruments: int        # 5-bit mask of groups present
    tempo_bpm: float
    n_bars: int


def _bpm(midi):
    """The song's tempo: the one that lasts longest (first change if there is only one)."""
    changes = midi.tempo_changes
    if not changes:
        return 120.0
    ends = [c.time for c in changes[1:]] + [max(midi.max_tick, changes[-1].time + 1)]
    spans = [max(0, end - c.time) for c, end in zip(changes, ends)]
    bpm = float(changes[int(np.argmax(spans))].tempo)
    return bpm if 20 <= bpm <= 300 else 120.0


def _load(midi, name):
    if isinstance(midi, miditoolkit.MidiFile):
        return midi
    try:
        return miditoolkit.MidiFile(str(midi))
    except Exception as e:  # mido raises many types for corrupt files
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{name}: not a readable MIDI file ({reason})") from None


class CPTokenizer:
    """MIDI ⇄ compound-word tokens. Stateless; one instance serves any number of songs."""

    attributes = ATTRIBUTES
    vocab_sizes = VOCAB_SIZES

    def encode(self, midi, keep_leading_silence=False):
        """Tokenize a MIDI file (path or miditoolkit.MidiFile).

        Quantizes onsets and durations to 16th notes whatever the file's ticks-per-beat,
        folds GM programs into the five groups (instruments.py), drops the leading silence
        (empty bars before the first note), unless ``keep_leading_silence``: a re-roll
        continues a piece of our own, whose bars must stay where the video put them.

        Raises:
            InputError: unreadable file, no notes, a meter other than 4/4 (1/4, 2/4), too long.
        """
        name = str(midi) if not isinstance(midi, miditoolkit.MidiFile) else "<MidiFile>"
        midi = _load(midi, name)
        for ts in midi.time_signature_changes:
            if ts.denominator != 4 or ts.numerator not in GRID_METERS:
                raise InputError(f"{name}: time signature {ts.numerator}/{ts.denominator} "
                                 "(only 4/4, or 1/4 and 2/4 read as 4/4, is supported)")
        scale = TICKS_PER_BEAT / midi.ticks_per_beat
        # (tick, group id, pitch) -> duration in ticks; duplicates keep the longest.
        notes = {}
        for inst in midi.instruments:
            group = group_of(inst.program, inst.is_drum)
            if group is None:
                continue
            gid = GROUP_ID[group]
            for n in inst.notes:
                tick = int(round(n.start * scale))
                dur = 1 if group == "drums" else int(round((n.end - n.start) * scale))
                dur = min(max(dur, 1), MAX_DURATION)
                key = (tick, gid, n.pitch)
                notes[key] = max(dur, notes.get(key, 0))
        if not notes:
            raise InputError(f"{name}: no notes in the five instrument groups")
        first_bar = 0 if keep_leading_silence else min(t for t, _, _ in notes) // TICKS_PER_BAR
        origin = first_bar * TICKS_PER_BAR
        n_bars = max(t for t, _, _ in notes) // TICKS_PER_BAR - first_bar + 1
        if n_bars > MAX_BARS:
            raise InputError(f"{name}: too long ({n_bars} bars of 4/4; the limit is {MAX_BARS})")

        by_tick = {}
        for (tick, gid, pitch), dur in sorted(notes.items()):
            by_tick.setdefault(tick - origin, []).append((gid, pitch, dur))
        by_bar = [[] for _ in range(n_bars)]
        for tick in sorted(by_tick):
            by_bar[tick // TICKS_PER_BAR].append(tick)

        rows = []
        for bar, ticks in enumerate(by_bar):
            rows.append((BAR, 0, len(ticks) + 1, 0, 0, 0, 0))
            for k, tick in enumerate(ticks):
                simu = by_tick[tick][:MAX_STRENGTH]
                rows.append((BEAT_T, tick % TICKS_PER_BAR + 1, len(ticks) - k + 1, len(simu), 0, 0, 0))
                rows.extend((NOTE, 0, 0, 0, gid, pitch + 1, dur) for gid, pitch, dur in simu)
        rows.append((EOS, 0, 0, 0, 0, 0, 0))
        groups = {GROUPS[gid - 1] for _, gid, _ in notes}
        return EncodedSong(np.array(rows, dtype=np.int64), mask_of(groups), _bpm(midi), n_bars)

    def decode(self, tokens, tempo_bpm=120.0, programs=None):
        """Write tokens as a multi-track MIDI file (miditoolkit.MidiFile).

        One track per group present (drums on the drum channel), GM programs from
        ``RENDER_PROGRAM`` unless ``programs`` overrides some, a fixed velocity per group.

        Raises:
            InputError: the tokens break the grammar (see ``tokens_errors``).
        """
        tokens = np.asarray(tokens)
        errors = tokens_errors(tokens)
        if errors:
            raise InputError(f"invalid token sequence: {errors[0]}")
        programs = {**RENDER_PROGRAM, **(programs or {})}
        midi = miditoolkit.MidiFile(ticks_per_beat=MIDI_TICKS_PER_BEAT)
        midi.tempo_changes = [miditoolkit.TempoChange(float(tempo_bpm), 0)]
        midi.time_signature_changes = [miditoolkit.TimeSignature(4, 4, 0)]
        tracks = {}
        unit = MIDI_TICKS_PER_BEAT // TICKS_PER_BEAT
        bar, tick = -1, 0
        for row in tokens:
            kind = row[TYPE]
            if kind == BAR:
                bar += 1
            elif kind == BEAT_T:
                tick = bar * TICKS_PER_BAR + int(row[BEAT]) - 1
            elif kind == NOTE:
                group = GROUPS[int(row[INSTRUMENT]) - 1]
                if group not in tracks:
                    tracks[group] = miditoolkit.Instrument(
                        program=0 if group == "drums" else programs[group],
                        is_drum=group == "drums", name=group)
                start = tick * unit
                end = start + int(row[DURATION]) * unit
                tracks[group].notes.append(
                    miditoolkit.Note(VELOCITY[group], int(row[PITCH]) - 1, start, end))
        midi.instruments = [tracks[g] for g in GROUPS if g in tracks]
        midi.max_tick = max(bar + 1, 0) * TICKS_PER_BAR * unit
        return midi

    def save_midi(self, tokens, path, tempo_bpm=120.0, programs=None):
        """decode() and write atomically to ``path``."""
        from ..files import atomic_path

        midi = self.decode(tokens, tempo_bpm, programs)
        with atomic_path(Path(path)) as tmp:
            midi.dump(str(tmp))
        return midi


def tokens_errors(tokens):
    """Grammar violations of a token sequence, as messages (empty list = valid).

    The grammar: bars first, beat ticks strictly increasing within a bar, the bar's density =
    its number of beat tokens and each beat's density counting them down, each beat followed
    by exactly ``strength`` notes in strictly increasing (instrument, pitch) order, every
    attribute in range and "none" where its type does not use it, one EOS at the very end.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != len(ATTRIBUTES):
        return [f"shape {tokens.shape}, expected (N, {len(ATTRIBUTES)})"]
    errors = []
    used = {BAR: (DENSITY,), BEAT_T: (BEAT, DENSITY, STRENGTH),
            NOTE: (INSTRUMENT, PITCH, DURATION), EOS: ()}
    bar_left = 0        # beat tokens still due in this bar
    notes_left = 0      # note tokens still due after the last beat
    last_tick = 0
    last_note = None
    seen_bar = False
    for i, row in enumerate(tokens.tolist()):
        kind = row[TYPE]
        if kind not in used:
            return errors + [f"token {i}: type {kind} is not bar/beat/note/eos"]
        for col in range(1, len(ATTRIBUTES)):
            if col not in used[kind] and row[col] != 0:
                errors.append(f"token {i}: {TYPE_NAMES[kind]} has {ATTRIBUTES[col]}={row[col]}")
            elif col in used[kind] and not 0 < row[col] < VOCAB_SIZES[col]:
                errors.append(f"token {i}: {ATTRIBUTES[col]}={row[col]} out of range")
        if errors:
            return errors
        if kind != NOTE and notes_left:
            return [f"token {i}: beat expected {notes_left} more notes"]
        if kind in (BAR, EOS) and bar_left:
            return [f"token {i}: bar expected {bar_left} more beats"]
        if kind == BAR:
            seen_bar, bar_left, last_tick = True, row[DENSITY] - 1, 0
        elif kind == BEAT_T:
            if not seen_bar:
                return [f"token {i}: beat before the first bar"]
            if row[BEAT] <= last_tick:
                return [f"token {i}: beat tick {row[BEAT] - 1} does not move forward"]
            if row[DENSITY] - 1 != bar_left:
                return [f"token {i}: density countdown {row[DENSITY] - 1}, expected {bar_left}"]
            if bar_left == 0:
                return [f"token {i}: more beats than the bar's density"]
            bar_left -= 1
            last_tick, notes_left, last_note = row[BEAT], row[STRENGTH], None
        elif kind == NOTE:
            if notes_left == 0:
                return [f"token {i}: note without a beat (or more notes than its strength)"]
            note = (row[INSTRUMENT], row[PITCH])
            if last_note is not None and note <= last_note:
                return [f"token {i}: notes of a beat not in (instrument, pitch) order"]
            notes_left, last_note = notes_left - 1, note
        elif kind == EOS and i != len(tokens) - 1:
            return [f"token {i}: EOS before the end"]
    if len(tokens) and tokens[-1, TYPE] != EOS:
        errors.append("no EOS at the end")
    return errors


def token_positions(tokens, n_beats=None):
    """Absolute beat index and beat-timing bin of every token (METHOD.md §3, eq. 12-13).

    Compute them on the whole song, then crop: a crop keeps its tokens' true positions.

    Args:
        tokens: (N, 7) array of a whole song (or of a generation so far).
        n_beats: total beats of the piece; default 4 * its number of bar tokens.

    Returns:
        (beat_index, timing): int64 arrays of shape (N,); timing in 0..TIMING_BINS.
    """
    tokens = np.asarray(tokens)
    kind = tokens[:, TYPE]
    rows = np.arange(len(kind))
    bar = np.maximum(np.cumsum(kind == BAR) - 1, 0)
    tick = np.where(kind == BEAT_T, tokens[:, BEAT] - 1, 0)
    # Notes take the tick of the beat (or bar) token before them.
    anchor = np.maximum.accumulate(np.where((kind == BEAT_T) | (kind == BAR), rows, 0))
    beat_index = (bar * TICKS_PER_BAR + tick[anchor]) // TICKS_PER_BEAT
    n_bars = int((kind == BAR).sum())
    beat_index = np.where(kind == EOS, 4 * n_bars, beat_index).astype(np.int64)
    total = n_beats if n_beats is not None else max(4 * n_bars, 1)
    timing = np.clip(np.rint(TIMING_BINS * beat_index / total), 0, TIMING_BINS).astype(np.int64)
    return beat_index, timing


def bar_densities(tokens):
    """Density of every bar, as the bar tokens state it (0..16)."""
    tokens = np.asarray(tokens)
    return tokens[tokens[:, TYPE] == BAR, DENSITY] - 1


def onset_strengths(tokens):
    """(absolute tick, strength) of every beat token."""
    tokens = np.asarray(tokens)
    bar = np.cumsum(tokens[:, TYPE] == BAR) - 1
    beats = tokens[:, TYPE] == BEAT_T
    ticks = bar[beats] * TICKS_PER_BAR + tokens[beats, BEAT] - 1
    return np.stack([ticks, tokens[beats, STRENGTH]], axis=1)
