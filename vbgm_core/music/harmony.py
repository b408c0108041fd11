"""Key, mode and a per-bar chord plan, used by the sampler as a soft prior on pitch.

The CP tokens carry no harmony, and a model trained on five genres' worth of keys spreads its
pitch choices over all twelve pitch classes (10.6% of the pitched note time fell outside the
best-fitting scale, against 3.1% in real songs; docs/MUSIC.md). A piece here gets a key and
mode, and a chord for every bar drawn from the 4-bar progressions most common in the training
data (``assets/harmony_stats.json``, written by ``scripts/export_style_stats.py``). The plan adds
to the model's pitch logits (:meth:`HarmonyPlan.pitch_prior`): out-of-key pitches are pushed
down strongly, chord tones up on strong beats, the bass towards the chord root in a bass
register. It is a prior, not a mask: the model can still play a passing note.

Key finding (:func:`estimate_key`) uses the Krumhansl-Kessler key profiles; chords are the
seven diatonic triads of the key, labelled by scale degree 0..6 (0 = tonic).
"""

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError
from .tokenizer import TICKS_PER_BAR, TICKS_PER_BEAT

STATS_PATH = Path(__file__).resolve().parents[1] / "assets" / "harmony_stats.json"
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_SPELLINGS = {"DB": 1, "D#": 3, "GB": 6, "G#": 8, "A#": 10, "CB": 11, "E#": 5, "FB": 4, "B#": 0}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
MODES = tuple(SCALES)
PHRASE_BARS = 4
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
_KK = {"major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
       "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)}

# The prior, in logits (natural log units). Measured trade-off (docs/MUSIC.md, 10 pieces): no
# prior 7.8% out of scale, entropy 2.47; -3: 0.4%, 2.0 (a few notes: 23% under real songs');
# -2: 1.7%, 2.31 (9% under real songs' 2.54): in key, with the melodic range kept.
OUT_OF_KEY = -2.0
CHORD_TONE_STRONG = 1.2   # on a beat (tick % 4 == 0)
CHORD_TONE_WEAK = 0.3     # between beats: passing notes stay likely
BASS_ROOT = 1.5           # extra for the bass on the chord's root
BASS_REGISTER = (28, 55)  # E1..G3: where training bass lines live (0.6% above C5)
BASS_REGISTER_SLOPE = 0.3  # logit per semitone outside the register
FINAL_CHORD = 3.0         # last bar: chord tones up, the rest down, so the piece ends on I
REPEAT_PHRASE = 0.6       # chance a phrase reuses the previous one's progression (songs loop)


def parse_key(key):
    """A key name ("C", "F#", "Bb", "c#"...) → pitch class 0..11; None or "auto" → None."""
    if key is None or str(key).lower() == "auto":
        return None
    name = str(key).strip().upper()
    if name in _SPELLINGS:
        return _SPELLINGS[name]
    if name.endswith("B") and len(name) == 2 and name[0] in "DEGAB":
        return (PITCH_CLASSES.index(name[0]) - 1) % 12
    if name in PITCH_CLASSES:
        return PITCH_CLASSES.index(name)
    raise InputError(f"unknown key {key!r}: use auto or a pitch class such as C, F#, Bb")


def check_mode(mode):
    """``"major"``/``"minor"``, or None for auto; InputError otherwise."""
    if mode is None or str(mode).lower() == "auto":
        return None
    if str(mode).lower() not in SCALES:
        raise InputError(f"unknown mode {mode!r}: use auto, major or minor")
    return str(mode).lower()


def triad(mode, degree):
    """Pitch classes (relative to the tonic) of the diatonic triad on scale degree 0..6."""
    scale = SCALES[mode]
    return tuple(scale[(degree + k) % 7] for k in (0, 2, 4))


def estimate_key(pc_weights):
    """(tonic 0..11, mode) whose Krumhansl-Kessler profile best correlates with a 12-bin
    pitch-class histogram (e.g. note time per pitch class)."""
    w = np.asarray(pc_weights, dtype=float)
    best, best_r = (0, "major"), -np.inf
    for mode in MODES:
        profile = np.asarray(_KK[mode])
        for tonic in range(12):
            r = np.corrcoef(w, np.roll(profile, tonic))[0, 1] if w.std() > 0 else 0.0
            if r > best_r:
                best, best_r = (tonic, mode), r
    return best


def label_chord(pc_weights, tonic, mode):
    """Scale degree 0..6 of the diatonic triad that best covers a bar's pitch-class weights
    (weight on its tones minus weight off them), or -1 for an empty bar."""
    w = np.asarray(pc_weights, dtype=float)
    if w.sum() <= 0:
        return -1
    scores = []
    for degree in range(7):
        tones = [(tonic + pc) % 12 for pc in triad(mode, degree)]
        on = w[tones].sum()
        scores.append(on - (w.sum() - on) + 0.5 * w[tones[0]])  # the root counts extra
    return int(np.argmax(scores))


@lru_cache(maxsize=1)
def harmony_stats():
    """The training data's key and progression statistics (``assets/harmony_stats.json``)."""
    return json.loads(STATS_PATH.read_text())


def _genre_stats(genre):
    stats = harmony_stats()
    return stats["genres"].get(genre) or stats["all"]


@dataclass
class HarmonyPlan:
    """A piece's key and chords.

    Attributes:
        tonic: pitch class of the key's tonic, 0..11 (0 = C).
        mode: ``"major"`` or ``"minor"``.
        n_bars: length of the piece in bars.
        changes: ``[(absolute 16th tick, scale degree 0..6)]``, sorted, the first at tick 0;
            a chord lasts until the next change.
    """

    tonic: int
    mode: str
    n_bars: int
    changes: list = field(default_factory=list)

    @classmethod
    def choose(cls, genre, n_bars, cut_ticks=(), seed=0, key=None, mode=None):
        """Draw a plan: key and mode from the genre's statistics (unless given), then 4-bar
        progressions weighted by how often the genre's songs play them, a phrase often
        repeating the one before. A cut on a bar line starts a new phrase; a cut inside a bar
        brings the next bar's chord in at the cut. The last bar is the tonic.

        Args:
            genre: genre name (statistics of all genres if unknown or None).
            n_bars: bars in the piece (>= 1).
            cut_ticks: absolute 16th-note ticks of the video's cuts.
            seed: random seed (same seed → same plan).
            key: tonic name or pitch class, None/"auto" to draw it.
            mode: "major"/"minor", None/"auto" to draw it.
        """
        rng = np.random.default_rng([seed, 15])  # its own stream: the sampler's stays as it was
        stats = _genre_stats(genre)
        mode = check_mode(mode)
        if mode is None:
            mode = "minor" if rng.random() < stats["minor_share"] else "major"
        tonic = key if isinstance(key, int) else parse_key(key)
        if tonic is None:
            p = np.asarray(stats["tonic"][mode], dtype=float) + 1.0  # +1: every key possible
            tonic = int(rng.choice(12, p=p / p.sum()))
        progs = stats["progressions"][mode]
        # Square-root weights: the one-chord vamp is a third of the data's phrases (rap loops,
        # and bars whose passing notes hide a change) and would make most plans one chord.
        weights = np.sqrt(np.asarray([c for _, c in progs], dtype=float))
        cut_bars = {t // TICKS_PER_BAR for t in cut_ticks if t % TICKS_PER_BAR == 0}
        degrees, phrase, pos = [], None, PHRASE_BARS
        for bar in range(n_bars):
            if pos >= PHRASE_BARS or bar in cut_bars:
                if phrase is None or rng.random() >= REPEAT_PHRASE or bar in cut_bars:
                    phrase = progs[int(rng.choice(len(progs), p=weights / weights.sum()))][0]
                pos = 0
            degrees.append(int(phrase[pos]))
            pos += 1
        degrees[-1] = 0
        if n_bars >= 2 and degrees[-2] == 0:
            degrees[-2] = 4  # a dominant before the final tonic: a cadence
        changes = [(bar * TICKS_PER_BAR, d) for bar, d in enumerate(degrees)]
        for t in sorted(cut_ticks):
            bar = t // TICKS_PER_BAR
            if t % TICKS_PER_BAR and bar + 1 < n_bars:
                changes.append((int(t), degrees[bar + 1]))
        changes = sorted(changes)
        merged = [c for i, c in enumerate(changes) if i == 0 or c[1] != changes[i - 1][1]]
        return cls(int(tonic), mode, n_bars, merged)

    @classmethod
    def for_rhythm(cls, rhythm, genre, seed=0, key=None, mode=None):
        """:meth:`choose` for a VideoRhythm (its bars and the ticks of its cuts)."""
        cuts = [b.tick for b in rhythm.visual_beats if b.cut]
        return cls.choose(genre, rhythm.n_bars, cuts, seed, key, mode)

    @property
    def key_name(self):
        return f"{PITCH_CLASSES[self.tonic]} {self.mode}"

    def degree_at(self, tick):
        """Scale degree of the chord sounding at an absolute 16th tick."""
        starts = [t for t, _ in self.changes]
        return self.changes[max(0, int(np.searchsorted(starts, tick, side="right")) - 1)][1]

    def chord_pcs(self, degree):
        """Absolute pitch classes of a degree's triad, root first."""
        return [(self.tonic + pc) % 12 for pc in triad(self.mode, degree)]

    def chord_name(self, degree):
        """E.g. "Am": root name, "m" for a minor triad, "dim" for a diminished one."""
        root, third, fifth = triad(self.mode, degree)
        quality = {(4, 7): "", (3, 7): "m", (3, 6): "dim"}.get(((third - root) % 12,
                                                               (fifth - root) % 12), "?")
        return PITCH_CLASSES[(self.tonic + root) % 12] + quality

    def scale_pcs(self):
        return [(self.tonic + pc) % 12 for pc in SCALES[self.mode]]

    def pitch_prior(self, group, tick):
        """Additive logits over the 128 MIDI pitches for a note of ``group`` at absolute
        16th ``tick`` (zeros for drums, whose pitches are drum sounds). Read-only array."""
        final = tick >= (self.n_bars - 1) * TICKS_PER_BAR
        return _prior(self.tonic, self.mode, self.degree_at(tick), group,
                      tick % TICKS_PER_BEAT == 0, final)

    def to_dict(self):
        """For reports: key, mode and the chord changes with names and bar positions."""
        return {"key": PITCH_CLASSES[self.tonic], "mode": self.mode,
                "chords": [{"tick": t, "bar": t / TICKS_PER_BAR, "degree": d,
                            "name": self.chord_name(d)} for t, d in self.changes]}

    def annotate(self, midi):
        """Write the key (a key signature) and the chords (markers) into a MidiFile made by
        ``CPTokenizer.decode``, so that the plan travels with the music (a DAW shows it, the
        score plot draws it)."""
        import miditoolkit

        per_tick = midi.ticks_per_beat // TICKS_PER_BEAT
        midi.key_signature_changes = [miditoolkit.KeySignature(
            PITCH_CLASSES[self.tonic] + ("m" if self.mode == "minor" else ""), 0)]
        midi.markers = [miditoolkit.Marker(f"chord {self.chord_name(d)}", t * per_tick)
                        for t, d in self.changes]
        return midi


@lru_cache(maxsize=512)
def _prior(tonic, mode, degree, group, on_beat, final):
    """The prior of :meth:`HarmonyPlan.pitch_prior`, cached: a piece uses a few dozen."""
    prior = np.zeros(128)
    if group != "drums":
        pcs = np.arange(128) % 12
        prior[~np.isin(pcs, [(tonic + pc) % 12 for pc in SCALES[mode]])] = OUT_OF_KEY
        chord_pcs = [(tonic + pc) % 12 for pc in triad(mode, degree)]
        chord = np.isin(pcs, chord_pcs)
        prior[chord] += CHORD_TONE_STRONG if on_beat else CHORD_TONE_WEAK
        if final:
            prior += np.where(chord, FINAL_CHORD, -FINAL_CHORD)
        if group == "bass":
            prior[pcs == chord_pcs[0]] += BASS_ROOT
            lo, hi = BASS_REGISTER
            p = np.arange(128)
            prior -= BASS_REGISTER_SLOPE * (np.maximum(p - hi, 0) + np.maximum(lo - p, 0))
    prior.setflags(write=False)
    return prior


def plan_from_midi(midi):
    """The (tick in MIDI ticks, chord name) markers :meth:`HarmonyPlan.annotate` wrote."""
    return [(m.time, m.text[len("chord "):]) for m in midi.markers if m.text.startswith("chord ")]
