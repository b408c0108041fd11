"""Key, mode and a per-bar chord plan, used by the sampler as a soft prior on pitch.

The CP tokens carry no harmony, and a model trained on five genres' worth of keys spreads its
pitch choices over all twelve pitch classes (10.6% of the pitched note time fell outside the
best-fitting scale, against 3.1% in real songs; docs/MUSIC.md). A piece here gets a key and
mode, and a chord for every bar drawn from the 4-bar progressions most common in the training
data (``assets/harmony_stats.json``, written by ``scripts/export_style_stats.py``); with a form
plan (music/form.py) its phrases are the form's and a returning section replays its chords. The
plan adds to the model's pitch logits (:meth:`HarmonyPlan.pitch_prior`) the data's chord colour
(issue 23): out-of-key pitches down (less between beats, where a chromatic passing tone may
fall), chord tones up on the beat, sevenths where the genre plays them, the bass towards the
chord root in a bass register, the last half bar towards the tonic triad. It is a prior, not a
mask. :meth:`HarmonyPlan.transpose` moves a phrase to another chord (re-used material, issue 23).

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

# The prior, in logits (natural log units), issue 23. Issue 15's fixed prior (-2 out of key,
# chord tones +1.2 on beats) kept 1% of the note time out of scale but narrowed the palette 25%
# under real songs'. Now the chord is favoured only on the beat, and the colour follows the
# data: harmony_stats.json's "colour" entry holds, per genre, for the bass and for the other
# groups, on the beat and between beats, how the training songs' note onsets fall on the
# chord's root, third, fifth, diatonic seventh, the other scale tones and the tones outside the
# key (scripts/export_style_stats.py). A tone's data logit is the log of its share per tone
# against an "other" scale tone's.
# - on the beat: the chord tones get CHORD_WEIGHT x their data logits (the model already keeps to
#   the chords it has played, the full ratios would count the chord twice); between beats the
#   scale is flat: passing and neighbour tones are as likely as chord tones;
# - the bass follows its data logits (CHORD_WEIGHT x) on and between beats: it names the chord;
# - the seventh gets its data logit (SEVENTH_WEIGHT x) everywhere: sevenths where the genre
#   plays them (R&B and rap lean on them, country hardly);
# - out of key: KEY_ON on the beat, KEY_OFF between beats, where a chromatic passing tone is
#   allowed (and kept short by the sampler, sampler.PASSING_SHORT).
# Measured choice of the weights in docs/MUSIC.md.
COLOUR_CATEGORIES = ("root", "third", "fifth", "seventh", "other", "out")
_TONES_PER_CATEGORY = np.array([1, 1, 1, 1, 3, 5])
CHORD_WEIGHT = 0.3
SEVENTH_WEIGHT = 1.0
KEY_ON = -1.5
KEY_OFF = -0.3
BASS_REGISTER = (28, 55)  # E1..G3: where training bass lines live (0.6% above C5)
BASS_REGISTER_SLOPE = 0.3  # logit per semitone outside the register
FINAL_CHORD = 3.0         # last bar: chord tones up, the rest down, so the piece ends on I
FINAL_FROM = 8            # ... from this tick of the last bar on (its second half)
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


def colour_categories(tonic, mode, degree):
    """``{pitch class: index into COLOUR_CATEGORIES}`` for the diatonic chord on ``degree``
    of the key (root, third, fifth, seventh, the other scale tones, outside the key)."""
    scale = SCALES[mode]
    out = {pc: 5 for pc in range(12)}
    for step in range(7):
        out[(tonic + scale[(degree + step) % 7]) % 12] = {0: 0, 2: 1, 4: 2, 6: 3}.get(step, 4)
    return out


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


@lru_cache(maxsize=64)
def colour_logits(genre, role, on_beat):
    """The data's log ratio of each COLOUR_CATEGORIES tone's share to an "other" scale tone's,
    for a genre (all genres if unknown or None), role "bass" or "other", on or between beats."""
    colour = harmony_stats()["colour"]
    table = colour["genres"].get(genre) or colour["all"]
    shares = np.maximum(np.asarray(table[role]["on" if on_beat else "off"], float), 1e-4)
    per_tone = shares / _TONES_PER_CATEGORY
    return np.log(per_tone / per_tone[COLOUR_CATEGORIES.index("other")])


@dataclass
class HarmonyPlan:
    """A piece's key and chords.

    Attributes:
        tonic: pitch class of the key's tonic, 0..11 (0 = C).
        mode: ``"major"`` or ``"minor"``.
        n_bars: length of the piece in bars.
        changes: ``[(absolute 16th tick, scale degree 0..6)]``, sorted, the first at tick 0;
            a chord lasts until the next change.
        genre: the genre whose chord colour the pitch prior follows (None: all genres').
    """

    tonic: int
    mode: str
    n_bars: int
    changes: list = field(default_factory=list)
    genre: str | None = None   # whose chord colour the prior uses (None: all genres')

    @classmethod
    def choose(cls, genre, n_bars, cut_ticks=(), seed=0, key=None, mode=None, form=None):
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
            form: a ``form.FormPlan``: its phrases replace the 4-bar phrases and the cuts on
                bar lines, and a phrase that returns a section replays that section's chords
                (so its pitched material comes back over the same harmony).
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

        def draw():
            return progs[int(rng.choice(len(progs), p=weights / weights.sum()))][0]

        degrees, phrase, pos = [], None, PHRASE_BARS
        if form is None:
            for bar in range(n_bars):
                if pos >= PHRASE_BARS or bar in cut_bars:
                    if phrase is None or rng.random() >= REPEAT_PHRASE or bar in cut_bars:
                        phrase = draw()
                    pos = 0
                degrees.append(int(phrase[pos]))
                pos += 1
        else:
            assert form.n_bars == n_bars, (form.n_bars, n_bars)
            for p in form.phrases:
                origin = form.phrases[p.source] if p.source is not None else None
                if phrase is None or p.cut or rng.random() >= REPEAT_PHRASE:
                    phrase = draw()
                for i in range(p.length):
                    if origin is not None and i < origin.length:
                        degrees.append(degrees[origin.start + i])
                    else:
                        degrees.append(int(phrase[i % PHRASE_BARS]))
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
        return cls(int(tonic), mode, n_bars, merged, genre)

    @classmethod
    def for_rhythm(cls, rhythm, genre, seed=0, key=None, mode=None, form=None):
        """:meth:`choose` for a VideoRhythm (its bars and the ticks of its cuts)."""
        cuts = [b.tick for b in rhythm.visual_beats if b.cut]
        return cls.choose(genre, rhythm.n_bars, cuts, seed, key, mode, form)

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

    def in_key(self, pitch):
        """Whether a MIDI pitch is in the plan's key (its major or natural-minor scale)."""
        return (pitch - self.tonic) % 12 in SCALES[self.mode]

    def transpose(self, pitch, from_tick, to_tick):
        """A pitch played over the chord at ``from_tick``, moved to the chord at ``to_tick``:
        by the scale steps between the two chords' roots, the short way (at most 3 steps up or
        down), so a chord tone stays a chord tone and the line keeps its shape. A pitch outside
        the key first moves to the nearest scale tone (the lower on a tie): the result is
        always in the key."""
        return _transpose(self.tonic, self.mode, int(pitch),
                          (self.degree_at(to_tick) - self.degree_at(from_tick) + 3) % 7 - 3)

    def pitch_prior(self, group, tick):
        """Additive logits over the 128 MIDI pitches for a note of ``group`` at absolute
        16th ``tick`` (zeros for drums, whose pitches are drum sounds). Read-only array."""
        final = tick >= (self.n_bars - 1) * TICKS_PER_BAR + FINAL_FROM
        return _prior(self.tonic, self.mode, self.degree_at(tick), group,
                      tick % TICKS_PER_BEAT == 0, final, self.genre)

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
def _prior(tonic, mode, degree, group, on_beat, final, genre=None):
    """The prior of :meth:`HarmonyPlan.pitch_prior`, cached: a piece uses a few dozen."""
    prior = np.zeros(128)
    if group != "drums":
        pcs = np.arange(128) % 12
        category = colour_categories(tonic, mode, degree)
        bass = group == "bass"
        logits = colour_logits(genre, "bass" if bass else "other", on_beat)
        by_category = np.zeros(len(COLOUR_CATEGORIES))
        if on_beat or bass:
            by_category[:3] = CHORD_WEIGHT * logits[:3]
        by_category[3] = SEVENTH_WEIGHT * logits[3]
        by_category[5] = KEY_ON if on_beat else KEY_OFF
        prior = by_category[[category[pc] for pc in range(12)]][pcs]
        if final:
            chord = np.isin(pcs, [(tonic + pc) % 12 for pc in triad(mode, 0)])   # the tonic
            prior = prior + np.where(chord, FINAL_CHORD, -FINAL_CHORD)
        if bass:
            lo, hi = BASS_REGISTER
            p = np.arange(128)
            prior = prior - BASS_REGISTER_SLOPE * (np.maximum(p - hi, 0) + np.maximum(lo - p, 0))
    prior.setflags(write=False)
    return prior


def _transpose(tonic, mode, pitch, steps):
    """``pitch`` moved by ``steps`` scale steps in the key (snapped to the scale first)."""
    scale = SCALES[mode]
    octave, rel = divmod(pitch - tonic, 12)
    # the nearest scale tone, in this octave or a neighbour's; the lower one on a tie
    shift, index = min(((k, i) for k in (-1, 0, 1) for i in range(7)),
                       key=lambda c: (abs(scale[c[1]] + 12 * c[0] - rel),
                                      scale[c[1]] + 12 * c[0] > rel))
    degree = 7 * (octave + shift) + index + steps
    return tonic + 12 * (degree // 7) + scale[degree % 7]


def plan_from_midi(midi):
    """The (tick in MIDI ticks, chord name) markers :meth:`HarmonyPlan.annotate` wrote."""
    return [(m.time, m.text[len("chord "):]) for m in midi.markers if m.text.startswith("chord ")]
