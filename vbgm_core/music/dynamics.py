"""Note velocities at render time: the CP tokens carry none, so the decoder wrote one fixed
velocity per instrument (4 distinct velocities per piece; real songs have about 50).

Every note's velocity is its group's typical level in the training songs, moved by
- a per-bar loudness curve that follows the picture's energy (the bar's video density, which
  the analysis already calibrated against the training data's densities), smoothed over bars;
- the training songs' metric accent (on-beat over off-beat notes, per group);
- a lift on visual beats, most on cuts;
- a small seeded humanisation.
Levels, spreads and accents are the medians in ``assets/dynamics_stats.json`` (written by
``scripts/export_style_stats.py`` from the MIDI files), not guessed constants; the few factors
below only say how much of the learned spread each cause may use.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .instruments import track_group
from .tokenizer import TICKS_PER_BAR, TICKS_PER_BEAT

STATS_PATH = Path(__file__).resolve().parents[1] / "assets" / "dynamics_stats.json"
CURVE_SD = 1.2       # the loudness curve spans +-1.2 within-song standard deviations
CURVE_SMOOTH = 0.25  # weight of each neighbouring bar: phrases swell, bars do not jump
VISUAL_LIFT = 0.6    # standard deviations added on a visual beat of full saliency ...
CUT_LIFT = 1.0       # ... and on a cut
HUMANISE = 0.25      # seeded noise, in standard deviations (about +-3 velocity steps)
FLOOR = 20           # quietest velocity written: softer notes vanish under the mix


@lru_cache(maxsize=1)
def dynamics_stats():
    """Per-group velocity statistics of the training songs (``assets/dynamics_stats.json``)."""
    return json.loads(STATS_PATH.read_text())["groups"]


def loudness_curve(rhythm):
    """Per-bar loudness offset in -1..1 from the video's energy (bar density 0..16)."""
    energy = np.array([b.density for b in rhythm.bars], dtype=float) / 16.0 * 2.0 - 1.0
    if len(energy) > 2:
        padded = np.concatenate([energy[:1], energy, energy[-1:]])
        energy = (1 - 2 * CURVE_SMOOTH) * energy + CURVE_SMOOTH * (padded[:-2] + padded[2:])
    return energy


def apply_velocities(midi, rhythm, seed=0):
    """Write a velocity into every note of a decoded MidiFile, in place.

    Args:
        midi: miditoolkit.MidiFile on the video's grid (tracks named after the groups, or GM
            programs that fold into them).
        rhythm: the VideoRhythm the music follows (bars, visual beats with ``cut`` flags).
        seed: humanisation seed (same seed → same velocities).

    Returns:
        the MidiFile.
    """
    stats = dynamics_stats()
    rng = np.random.default_rng([seed, 16])  # its own stream, apart from the sampler's
    curve = loudness_curve(rhythm)
    lifts = {}
    for b in rhythm.visual_beats:
        lifts[b.tick] = max(lifts.get(b.tick, 0.0), CUT_LIFT if b.cut else VISUAL_LIFT * b.saliency)
    per_tick = midi.ticks_per_beat / TICKS_PER_BEAT
    for inst in midi.instruments:
        group = track_group(inst)
        s = stats.get(group or "piano")
        sd = s["within_song_sd"]
        for n in sorted(inst.notes, key=lambda n: (n.start, n.pitch)):
            tick = int(round(n.start / per_tick))
            bar = min(tick // TICKS_PER_BAR, len(curve) - 1)
            # on-beat notes louder than off-beat ones by the data's lift, centred on the level
            accent = s["beat_lift"] / 2 * (1 if tick % TICKS_PER_BEAT == 0 else -1)
            v = (s["median_song_mean"] + accent + sd * (CURVE_SD * curve[bar]
                 + lifts.get(tick, 0.0) + HUMANISE * rng.standard_normal()))
            n.velocity = int(np.clip(round(v), max(FLOOR, s["p5"]), min(127, s["p95"])))
    return midi


def bar_loudness(midi, n_bars):
    """Mean velocity of the notes starting in each bar (NaN for a bar without notes): the
    loudness curve as played, for plots and reports."""
    per_bar = midi.ticks_per_beat * TICKS_PER_BAR // TICKS_PER_BEAT
    sums, counts = np.zeros(n_bars), np.zeros(n_bars)
    for inst in midi.instruments:
        for n in inst.notes:
            bar = n.start // per_bar
            if bar < n_bars:
                sums[bar] += n.velocity
                counts[bar] += 1
    with np.errstate(invalid="ignore"):
        return sums / counts
