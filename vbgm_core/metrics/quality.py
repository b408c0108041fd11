"""What a listener hears as wrong, measured (issue 15): the same code for generated pieces and
for the training songs, so that every figure has a reference (benchmarks/bench_music.py,
docs/MUSIC.md).

MIDI: out-of-scale share, longest silence, single-onset bars, distinct velocities, bass notes
above C5, the final chord and how far the music ends from the video's end. Audio: integrated
loudness, true peak, clipped samples.
"""

import numpy as np

from ..music.harmony import SCALES, estimate_key, triad
from ..music.instruments import group_of
from ..music.tokenizer import TICKS_PER_BAR
from .grid import grid_notes
from .musdr import grooving_similarity, pitch_class_entropy

C5 = 72  # MIDI pitch of C5 (middle C = C4 = 60)
CLIP_LEVEL = 32767 / 32768  # a sample at or over this is clipped once written as 16-bit PCM


def _pitched_time(midi):
    """(pitch classes, seconds) of the pitched notes."""
    notes = grid_notes(midi)
    keep = ~notes.is_drum
    return notes.pitch[keep] % 12, (notes.end_s - notes.start_s)[keep]


def out_of_scale_share(midi):
    """Share of pitched note time outside the best-fitting major or natural-minor scale
    (the scale, of the 24, holding the most note time); NaN without pitched notes."""
    pcs, seconds = _pitched_time(midi)
    total = seconds.sum()
    if total <= 0:
        return float("nan")
    hist = np.bincount(pcs, weights=seconds, minlength=12)
    inside = max(hist[[(t + pc) % 12 for pc in SCALES[mode]]].sum()
                 for mode in SCALES for t in range(12))
    return float(max(0.0, 1.0 - inside / total))  # max: no -0.0 from rounding


def piece_key(midi):
    """(tonic, mode) of a piece by the Krumhansl-Kessler profiles of its pitched note time."""
    pcs, seconds = _pitched_time(midi)
    return estimate_key(np.bincount(pcs, weights=seconds, minlength=12))


def longest_silence(midi, duration_s=None):
    """Longest stretch in seconds where no note sounds (drums for their written length), from
    0 to ``duration_s`` (default: the last note's end)."""
    notes = grid_notes(midi)
    if not len(notes.start_s):
        return float(duration_s or 0.0)
    order = np.argsort(notes.start_s, kind="stable")
    covered, longest = 0.0, 0.0
    for start, end in zip(notes.start_s[order], notes.end_s[order]):
        longest = max(longest, start - covered)
        covered = max(covered, end)
    end = covered if duration_s is None else duration_s
    return float(max(longest, end - covered))


def single_onset_bar_share(midi):
    """Share of bars, from the first bar with a note to the last, with exactly one onset tick."""
    ticks = np.unique(grid_notes(midi).tick)
    if not ticks.size:
        return float("nan")
    bars = ticks // TICKS_PER_BAR
    counts = np.bincount(bars - bars.min())
    return float(np.mean(counts == 1))


def distinct_velocities(midi):
    return len({n.velocity for inst in midi.instruments for n in inst.notes})


def bass_above_c5_share(midi):
    """Share of bass-group notes pitched above C5 (MIDI 72); NaN without bass notes."""
    pitches = [n.pitch for inst in midi.instruments
               if group_of(inst.program, inst.is_drum) == "bass" for n in inst.notes]
    return float(np.mean(np.array(pitches) > C5)) if pitches else float("nan")


def music_end_s(midi):
    notes = grid_notes(midi)
    return float(notes.end_s.max()) if len(notes.end_s) else 0.0


def final_chord(midi):
    """Pitch classes of the pitched notes still sounding when the music ends (its last 1 ms)."""
    notes = grid_notes(midi)
    keep = ~notes.is_drum
    if not keep.any():
        return set()
    end = notes.end_s[keep].max()
    sounding = keep & (notes.end_s >= end - 1e-3) & (notes.start_s < end)
    return {int(p) for p in notes.pitch[sounding] % 12}


def is_tonic_chord(pcs, tonic, mode):
    """Whether a set of pitch classes is the tonic triad of the key, or part of it holding the
    tonic (a bare root, or root and fifth, also close on the tonic)."""
    tonic_triad = {(tonic + pc) % 12 for pc in triad(mode, 0)}
    return bool(pcs) and tonic % 12 in pcs and set(pcs) <= tonic_triad


def midi_quality(midi, duration_s=None, key=None):
    """The MIDI statistics of one piece as a dict (``duration_s``: the video's length, for the
    end gap and silences; ``key``: (tonic, mode) of its plan, else estimated)."""
    tonic, mode = key or piece_key(midi)
    end = music_end_s(midi)
    return {
        "out_of_scale": out_of_scale_share(midi),
        "pitch_class_entropy": pitch_class_entropy(midi),
        "grooving": grooving_similarity(midi),
        "longest_silence_s": longest_silence(midi, duration_s),
        "single_onset_bars": single_onset_bar_share(midi),
        "distinct_velocities": distinct_velocities(midi),
        "bass_above_c5": bass_above_c5_share(midi),
        "end_gap_s": None if duration_s is None else float(abs(duration_s - end)),
        "final_chord_tonic": is_tonic_chord(final_chord(midi), tonic, mode),
    }


def audio_quality(audio, sample_rate):
    """Integrated loudness (LUFS), true peak (dBTP) and clipped samples of float audio
    ([n] or [n, channels]), measured in one block-wise pass (``audio.master.measure``). A
    scored piece is measured by its mastering's final pass instead (``Scorer.score``)."""
    from ..audio.master import BLOCK, measure

    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    blocks = (audio[i:i + BLOCK] for i in range(0, len(audio), BLOCK))
    return measure(blocks, sample_rate, audio.shape[1])
