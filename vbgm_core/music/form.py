"""The form of a piece: phrases, the sections that come back, where the drums leave the groove.

Real songs repeat (``../shared/docs/FORM.md``): a drummer keeps one groove (every earlier bar
is ~0.7 alike), pitched parts come back in 2-, 4- and 8-bar phrases and almost never copy the
bar just before. The model on its own does neither (drum repetition 0.34 against 0.80-0.90 in
real songs, pitched 0.08 against 0.28-0.47, docs/MUSIC.md). A :class:`FormPlan` says, before
sampling, what each bar should re-use; the sampler (music/sampler.py) then leans each bar's
choices towards that material, so the model still makes every choice.

The plan, deterministic from the video's rhythm and the seed:

- **Phrases.** A cut starts a phrase at its nearest bar line, unless that would leave a phrase
  shorter than ``MIN_PHRASE`` bars (fast cutting does not make one-bar phrases). Between such
  boundaries the bars fall into 4-bar phrases; a long stretch (``LONG_SEGMENT`` bars and more)
  may, by the seed, use 8-bar periods; what is left at the end of a stretch is a shorter phrase
  (2 or 3 bars; a lone bar turns 4 + 1 into 3 + 2).
- **Sections.** A phrase whose picture resembles an earlier phrase's (bar densities, i.e. the
  motion speed, within ``SIMILAR`` on average; a phrase that starts on a cut only matches one
  that began a shot, the piece's first or another on a cut) returns that phrase's section: its bars re-use the section's first statement. Otherwise it is new
  material, with the inner repetition real phrases have (the third bar answers the first; with
  the seed the fourth also answers the second; an 8-bar period restates its first half).
- **Pitched sources.** Each bar names the earlier bar whose pitched material it replays
  (transposed to the current chord by the sampler), or -1 for new material.
- **Fills.** The drums keep one groove from bar to bar, except in a bar's ``fills``: the last
  beat of a phrase followed by another (the last two beats before a new section), and the
  tick of every cut and strong visual beat (an accent).
"""

from dataclasses import dataclass, field

import numpy as np

from .tokenizer import MAX_STRENGTH, TICKS_PER_BAR, TICKS_PER_BEAT

PHRASE_BARS = 4          # the usual phrase
MIN_PHRASE = 2           # a cut closer than this to the previous phrase start starts no phrase
LONG_SEGMENT = 8         # a stretch this long may use 8-bar periods (by the seed)
PERIOD_CHANCE = 0.5      # ... with this chance
SIMILAR = 0.25           # mean |density difference| / 16 under which a phrase returns a section
ANSWER_CHANCE = 0.5      # chance a new 4-bar phrase's fourth bar answers its second (A B A B')
STRONG_BEAT = 8          # a visual beat with at least this many notes (of 24) is strong: a fill
FILL_TICKS = TICKS_PER_BEAT          # fill at a phrase end: the last beat
SECTION_FILL_TICKS = 2 * TICKS_PER_BEAT  # before a new section: the last two beats


@dataclass(frozen=True)
class Phrase:
    """One phrase of a :class:`FormPlan`.

    Attributes:
        start: its first bar.
        length: bars.
        section: section label index (0 = A, 1 = B, ...).
        source: index of the earlier phrase it returns (its section's first statement), or
            None for new material.
        cut: whether it starts on a cut.
    """

    start: int
    length: int
    section: int
    source: int | None = None
    cut: bool = False

    @property
    def end(self):
        return self.start + self.length


@dataclass
class FormPlan:
    """A piece's phrases, which bar re-uses which, and where the drums fill.

    Attributes:
        n_bars: bars in the piece.
        phrases: the :class:`Phrase` list, in order, covering every bar once.
        pitched_source: per bar, the earlier bar whose pitched notes it replays, or -1.
        fills: per bar, the sorted ticks (0..15) where the drums leave the groove.
    """

    n_bars: int
    phrases: list = field(default_factory=list)
    pitched_source: list = field(default_factory=list)
    fills: list = field(default_factory=list)

    @classmethod
    def choose(cls, n_bars, densities=None, cut_ticks=(), beats=None, seed=0):
        """The plan for a piece.

        Args:
            n_bars: bars in the piece (>= 0).
            densities: the video's density (0..16) of each bar, or None (every phrase then
                resembles every other: free music keeps one form).
            cut_ticks: absolute 16th ticks of the video's cuts.
            beats: ``{absolute tick: strength}`` of the visual beats (cuts included).
            seed: random seed; the same inputs and seed give the same plan.
        """
        rng = np.random.default_rng([seed, 23])   # its own stream, apart from the sampler's
        dens = list(densities) if densities is not None else [0] * n_bars
        dens = (dens + [dens[-1] if dens else 0] * n_bars)[:n_bars]
        cut_ticks = sorted(int(t) for t in cut_ticks if 0 <= t < n_bars * TICKS_PER_BAR)
        cut_bars = {int(np.floor(t / TICKS_PER_BAR + 0.5)) for t in cut_ticks}

        # phrase boundaries: bar 0, and cuts at least MIN_PHRASE bars from the last boundary
        # and from the end
        starts = [0]
        for bar in sorted(cut_bars):
            if bar - starts[-1] >= MIN_PHRASE and n_bars - bar >= MIN_PHRASE:
                starts.append(bar)
        phrases = []
        for a, b in zip(starts, starts[1:] + [n_bars]):
            period = b - a >= LONG_SEGMENT and rng.random() < PERIOD_CHANCE
            for length in _split(b - a, 2 * PHRASE_BARS if period else PHRASE_BARS):
                phrases.append((a, length, a in cut_bars))
                a += length

        planned, sources, firsts = [], [-1] * n_bars, []
        for k, (start, length, cut) in enumerate(phrases):
            best, best_d = None, SIMILAR
            for j, earlier in enumerate(planned):
                if cut and not (earlier.cut or earlier.start == 0):
                    continue   # a new shot returns only what began a shot
                n = min(length, earlier.length)
                d = np.mean(np.abs(np.subtract(dens[start:start + n],
                                               dens[earlier.start:earlier.start + n]))) / 16
                if d <= best_d:    # ties: the latest
                    best, best_d = j, d
            if best is None:
                phrase = Phrase(start, length, len(firsts), None, cut)
                firsts.append(k)
            else:
                root = planned[best].source if planned[best].source is not None else best
                phrase = Phrase(start, length, planned[root].section, root, cut)
            planned.append(phrase)
            inner = _inner(length, rng)
            origin = planned[phrase.source] if phrase.source is not None else None
            for i in range(length):
                bar = start + i
                if origin is not None and i < origin.length:
                    sources[bar] = origin.start + i
                elif inner[i] is not None:
                    sources[bar] = start + inner[i]
        fills = [set() for _ in range(n_bars)]
        for k, phrase in enumerate(planned[:-1]):
            new_section = planned[k + 1].source is None
            last = phrase.end - 1
            width = SECTION_FILL_TICKS if new_section else FILL_TICKS
            fills[last].update(range(TICKS_PER_BAR - width, TICKS_PER_BAR))
        strong = [t for t, s in (beats or {}).items()
                  if s >= STRONG_BEAT and 0 <= t < n_bars * TICKS_PER_BAR]
        for t in cut_ticks + strong:   # an accent: the drums play what the moment asks
            fills[t // TICKS_PER_BAR].add(t % TICKS_PER_BAR)
        return cls(n_bars, planned, sources, [tuple(sorted(f)) for f in fills])

    @classmethod
    def for_targets(cls, targets, seed=0):
        """:meth:`choose` for the sampler's ``Targets`` (densities, cuts, visual beats)."""
        return cls.choose(targets.n_bars, targets.densities, targets.cuts, targets.beats, seed)

    @classmethod
    def for_rhythm(cls, rhythm, seed=0):
        """:meth:`choose` for a VideoRhythm: the same plan as for its ``Targets``."""
        limit = rhythm.n_bars * TICKS_PER_BAR
        beats = {b.tick: min(max(b.strength, 1), MAX_STRENGTH)
                 for b in rhythm.visual_beats if 0 <= b.tick < limit}
        cuts = [b.tick for b in rhythm.visual_beats if b.cut and 0 <= b.tick < limit]
        return cls.choose(rhythm.n_bars, [b.density for b in rhythm.bars], cuts, beats, seed)

    def phrase_of(self, bar):
        """Index of the phrase holding ``bar``."""
        for k, p in enumerate(self.phrases):
            if p.start <= bar < p.end:
                return k
        raise IndexError(bar)

    @property
    def labels(self):
        """The form as letters, one per phrase, e.g. ``"AAB"``."""
        return "".join(chr(ord("A") + p.section % 26) for p in self.phrases)

    def to_dict(self):
        """For reports: the phrases (start bar, bars, section letter, returned phrase)."""
        return {"form": self.labels,
                "phrases": [{"bar": p.start, "bars": p.length,
                             "section": chr(ord("A") + p.section % 26), "returns": p.source,
                             "cut": p.cut} for p in self.phrases]}


def _split(length, nominal):
    """Phrase lengths of a stretch of ``length`` bars: ``nominal`` bars each, the rest at the
    end (2 or 3 bars; a lone bar turns the last 4 + 1 into 3 + 2)."""
    if length <= 0:
        return []
    if length <= PHRASE_BARS + 1 and nominal == PHRASE_BARS:
        return [length] if length <= PHRASE_BARS else [3, 2]
    lengths = [nominal] * (length // nominal)
    rest = length % nominal
    if nominal > PHRASE_BARS and rest:
        return lengths + _split(rest, PHRASE_BARS)
    if rest == 1:
        lengths[-1:] = [nominal - 1, 2]
    elif rest:
        lengths.append(rest)
    return lengths


def _inner(length, rng):
    """Which earlier bar of the phrase each bar of new material answers (offsets, or None):
    the third bar the first; by chance the fourth the second; an 8-bar period restates its
    first three bars in bars 5-7."""
    inner = [None] * length
    if length >= 3:
        inner[2] = 0
    if length >= 4 and (length > PHRASE_BARS or rng.random() < ANSWER_CHANCE):
        inner[3] = 1
    if length >= 2 * PHRASE_BARS:
        inner[4:7] = [0, 1, 2]
    return inner
