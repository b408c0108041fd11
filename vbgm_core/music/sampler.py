"""Controlled generation: Algorithm 1 of the CMT paper (METHOD.md §4) with grammar masks.

One token per step with the model's recurrent state (O(1) per token). The grammar of the
compound words fixes every token's type (a bar's density says how many beat tokens follow, a
beat's strength how many notes), so the sampler chooses the attributes, masked so that the
result always decodes: beat ticks move forward and leave room for the beats still due, notes
come in (instrument, pitch) order from the chosen instruments only, drums last one tick, pitches stay in each instrument's range, and
the piece has exactly the video's number of bars, then EOS.

The video's controls, each applied with probability C (the control degree):
- a bar's density is replaced by the video's density for that bar;
- a visual beat (or cut) becomes a beat token at its tick with the video's strength: the
  sampled tick may not pass it, and a beat sampled at or after it is moved onto it.

What makes it sound like music rather than the model's raw choices (issue 15, docs/MUSIC.md):
- a harmony plan (music/harmony.py: key, mode, a chord per bar) adds a soft prior to the pitch
  logits, so notes keep to the key and chords without a hard mask;
- calm is not silence: no bar is thinner than ``min_density`` onsets (a still picture maps every
  bar to the lowest densities, which thinned the music to single hits with multi-second gaps),
  and in calm bars pitched notes lean towards long, held durations.

Groove and form (issue 23, docs/MUSIC.md): the model on its own hardly repeats itself, real
songs do. With ``repetition`` r > 0 a form plan (music/form.py) names, per bar, the earlier bar
whose pitched notes come back, and the drums keep a groove: each bar's drums lean towards those
of the bar two back (one back for the second bar), except in the plan's fills (phrase ends, cuts,
strong visual beats). The bar's template (those drums, the source bar's pitched notes moved to
the current chord by ``HarmonyPlan.transpose``, the reference bar's onset ticks and density) is
not copied: every choice the template speaks to gets r x a logit bonus (``REUSE``) on the
template's value, added to the model's logits with the other priors, so the density control,
the grammar masks and the harmony prior still hold, the model still chooses, and every token
is fed through it as before. r = 0 is the free sampler, token for token.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import Cancelled
from .form import FormPlan
from .harmony import HarmonyPlan
from .instruments import GROUP_ID, GROUPS
from .sampling import Sampling
from .tokenizer import (
    BAR,
    BEAT_T,
    EOS,
    MAX_STRENGTH,
    NOTE,
    TICKS_PER_BAR,
    TICKS_PER_BEAT,
    TIMING_BINS,
    token_positions,
)

# Pitch range of each group, inclusive: the 0.5th-99.5th percentiles of the midi_genre training
# notes (drums: GM percussion keys). A weak model's stray pitches (a bass at 115) are masked out.
PITCH_RANGE = {"drums": (35, 82), "piano": (33, 93), "guitar": (38, 79), "bass": (25, 74),
               "strings": (36, 91)}


# Genre guidance keeps to choices at least this likely relative to the best one (Li et al. 2023,
# contrastive decoding, use 0.1).
PLAUSIBLE = 0.1

# Bars at or below this density are calm: their pitched notes get up to CALM_HOLD logits on
# durations of at least HOLD_TICKS (half a bar), sustained pads and held bass.
CALM_DENSITY = 6
CALM_HOLD = 2.0
HOLD_TICKS = 8
# Bars at or below SPARSE_DENSITY: their onsets (where no visual beat sets the strength) get up
# to CALM_CHORD logits on at least CALM_NOTES notes, so a sparse bar sounds chords, not lone
# notes (issue 23: a still picture's bars held 4 pitched notes and 2.5 pitch classes, real
# songs' 36 and 5.2; the palette cannot be wide with two notes a bar).
SPARSE_DENSITY = 10
CALM_CHORD = 6.0
CALM_NOTES = 3

# Re-use (issue 23): logit bonus, at repetition 1, for the template's choice of each attribute.
# "next" is the first template tick still ahead (so ticks are not skipped); "other" goes to the
# template's later ticks/notes at this point; "extra_drums" (negative) to drums where the groove
# has none (a busier bar's extra onsets go to the pitched parts); "fill" to snare and toms in a
# fill. Chosen by measurement (docs/MUSIC.md).
REUSE = {"density": 9.0, "tick": 9.0, "next": 6.0, "strength": 9.0, "instrument": 12.0,
         "pitch": 15.0, "duration": 9.0, "other": 0.5, "extra_drums": -12.0, "fill": 1.5}
FILL_KIT = (38, 40, 41, 43, 45, 47, 48, 50)   # GM snares and toms
# A pitched note outside the plan's key is a passing tone: durations up to PASSING_TICKS get
# PASSING_SHORT logits (real songs' 3-4% of note time out of scale is mostly short notes).
PASSING_SHORT = 3.0
PASSING_TICKS = 2
DRUMS = GROUP_ID["drums"]


@dataclass
class Targets:
    """What the video asks for, on the music grid.

    Attributes:
        n_bars: length of the piece in bars.
        densities: target density (0..16) of each bar, or None for free music.
        beats: ``{absolute tick: strength}`` of the visual beats and cuts.
    """

    n_bars: int
    densities: list | None = None
    beats: dict = field(default_factory=dict)
    cuts: list = field(default_factory=list)  # ticks of the cuts (the harmony plan's changes)

    @classmethod
    def from_rhythm(cls, rhythm):
        """Targets of a VideoRhythm (its visual beats include the cuts, at full strength)."""
        limit = rhythm.n_bars * TICKS_PER_BAR
        beats = {b.tick: min(max(b.strength, 1), MAX_STRENGTH)
                 for b in rhythm.visual_beats if 0 <= b.tick < limit}
        cuts = sorted(b.tick for b in rhythm.visual_beats if b.cut and 0 <= b.tick < limit)
        return cls(rhythm.n_bars, [b.density for b in rhythm.bars], beats, cuts)


def guided(rows, allowed, weight):
    """Genre guidance: the logits of row 0 (the chosen genre), those of the choices it finds
    plausible (probability >= PLAUSIBLE x the best allowed one) moved ``weight`` x away from
    the mean of rows 1.. (the other genres). Only the plausible ones, as in contrastive
    decoding (Li et al. 2023): amplified differences in the unlikely tail made pieces twice as
    dense. The tail keeps its own logits rather than being cut, as contrastive decoding does:
    cutting it took a third of a bit of pitch-class entropy at any weight (docs/GENRE.md)."""
    z = rows[0]
    p = np.where(allowed, np.exp(z - z[allowed].max()), 0.0)
    return np.where(p >= PLAUSIBLE, z + weight * (z - rows[1:].mean(0)), z)


def _choose(logits, allowed, temperature, top_p, rng):
    """Sample an index of ``logits`` among ``allowed`` (bool array) with temperature + top-p."""
    idx = np.flatnonzero(allowed)
    if len(idx) == 1:
        return int(idx[0])
    z = logits[idx] / max(temperature, 1e-6)
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    keep = np.cumsum(p[order]) - p[order] < top_p  # the smallest set reaching top_p
    kept = order[keep]
    q = p[kept] / p[kept].sum()
    return int(idx[kept[rng.choice(len(kept), p=q)]])


class ControlledSampler:
    """Generates the tokens of one piece for a video (or free music without targets).

    Args:
        model: a CMT in eval mode.
        genre: genre index of the model.
        instruments: group names to use (subset of GROUPS).
        control: control degree C in [0, 1].
        seed: random seed; same inputs and seed give the same tokens.
        sampling: a :class:`Sampling`.
        timing: give the model the beat-timing encoding (the "unconditioned" baseline of the
            evaluation turns it off).
        pitch_range: instrument group → (lowest, highest) MIDI pitch allowed; default: the
            bundled model's training data (PITCH_RANGE).
        harmony: a :class:`HarmonyPlan` for the piece; ``"auto"`` draws one at ``generate``
            from all genres' statistics and the seed; None turns the pitch prior off.
        min_density: fewest onsets in any bar (0 = as sparse as the video and model say).
        repetition: 0..1, how strongly each bar re-uses its template (the groove, a returning
            phrase); 0 = free sampling, exactly as without it.
        form: a :class:`FormPlan`; ``"auto"`` builds one at ``generate`` from the targets and
            the seed; None keeps the groove but returns no phrases.

    After ``generate``, ``plan`` is the HarmonyPlan used (None without one) and ``form_plan``
    the FormPlan (None at repetition 0).
    """

    def __init__(self, model, genre, instruments, control, seed, sampling=None, timing=True,
                 pitch_range=None, harmony="auto", min_density=0, repetition=0.0, form="auto"):
        # Users' values are checked once, in options.ScoreOptions; here only the contract.
        assert 0.0 <= control <= 1.0, control
        assert instruments and set(instruments) <= set(GROUPS), instruments
        assert 0 <= min_density <= TICKS_PER_BAR, min_density
        assert harmony is None or harmony == "auto" or isinstance(harmony, HarmonyPlan), harmony
        assert 0.0 <= repetition <= 1.0, repetition
        assert form is None or form == "auto" or isinstance(form, FormPlan), form
        self.repetition = float(repetition)
        self.form = form
        self.form_plan = None
        self.model = model
        self.group_ids = sorted(GROUP_ID[i] for i in instruments)
        self.control = control
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.harmony = harmony
        self.plan = None
        self.min_density = int(min_density)
        self.sampling = sampling or Sampling()
        self.timing = timing
        self.pitch_range = pitch_range or PITCH_RANGE   # the model's own data, where it has it
        # Batch row 0 runs the chosen genre; with guidance, rows 1.. run the other genres.
        n_genres = model.cfg.n_genres
        self.genres = [genre] + ([g for g in range(n_genres) if g != genre]
                                 if self.sampling.genre_guidance > 0 else [])

    @torch.no_grad()
    def _logits(self, state, kind):
        """Attribute logits ``[batch, vocab]``: row 0 the genre, rows 1.. the others."""
        h = state.hidden
        out = self.model.attribute_logits(h, torch.full(h.shape[:1], kind, dtype=torch.long))
        return {k: v.double().numpy() for k, v in out.items()}

    def _pick(self, logits, name, allowed, bias=None):
        """Sample attribute ``name`` among ``allowed``; ``bias`` (a prior, in logits) is added
        to every genre's row before guidance and truncation."""
        rows = logits[name] if bias is None else logits[name] + bias
        z = rows[0] if len(rows) == 1 else guided(rows, allowed, self.sampling.genre_guidance)
        return _choose(z, allowed, self.sampling.temperature[name], self.sampling.top_p[name],
                       self.rng)

    def generate(self, targets, progress=None, cancel=None, prefix=None):
        """Sample the piece.

        Args:
            targets: :class:`Targets` (n_bars is always honoured; densities/beats with prob C).
            progress: optional callable(fraction) called once per bar.
            cancel: optional callable() → True to stop (raises Cancelled).
            prefix: tokens of the piece's first bars, kept as they are (a re-roll, reroll.py):
                the model runs through them, and sampling continues from the state they
                leave (and, with repetition, re-uses them like any earlier bar).

        Returns:
            (N, 7) int64 tokens ending with EOS, valid under ``tokens_errors``.
        """
        model, rng = self.model, self.rng
        n_beats = 4 * targets.n_bars
        self.plan = self.harmony
        if self.harmony == "auto":
            self.plan = HarmonyPlan.choose(None, targets.n_bars, targets.cuts, self.seed)
        self.form_plan = None
        if self.repetition > 0:
            self.form_plan = (FormPlan.for_targets(targets, self.seed) if self.form == "auto"
                              else self.form)
        memory = _Memory()
        batch = len(self.genres)
        mask = [1.0 if GROUP_ID[g] in self.group_ids else 0.0 for g in GROUPS]
        state = model.start(torch.tensor(self.genres), torch.tensor([mask] * batch))
        tokens = []

        def emit(row, beat_index):
            tokens.append(row)
            timing = round(TIMING_BINS * beat_index / n_beats) if self.timing else 0
            model.step(state, torch.tensor([row] * batch), torch.tensor([beat_index] * batch),
                       torch.tensor([timing] * batch))

        first = 0
        if prefix is not None:
            for row, beat_index in zip(prefix.tolist(), token_positions(prefix)[0].tolist()):
                emit(row, beat_index)
            first = int((prefix[:, 0] == BAR).sum())
            memory.record(tokens, 0, self._fills)
        for bar in range(first, targets.n_bars):
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            start = len(tokens)
            template = self._template(memory, bar)
            # Visual beats of this bar that the control keeps (each with probability C).
            forced = {tick - bar * TICKS_PER_BAR: s for tick, s in sorted(targets.beats.items())
                      if bar * TICKS_PER_BAR <= tick < (bar + 1) * TICKS_PER_BAR
                      and rng.random() < self.control}
            logits = self._logits(state, BAR)
            allowed = np.zeros(TICKS_PER_BAR + 2, bool)
            allowed[1 + len(forced):] = True  # room for the forced beats
            density = self._pick(logits, "density", allowed,
                                 template and template.density_bias(self.repetition)) - 1
            if targets.densities is not None and rng.random() < self.control:
                density = targets.densities[bar]
            density = min(max(density, len(forced), self.min_density), TICKS_PER_BAR)
            calm = max(0.0, (CALM_DENSITY - density) / CALM_DENSITY)
            sparse = max(0.0, (SPARSE_DENSITY - density) / SPARSE_DENSITY)
            emit([BAR, 0, density + 1, 0, 0, 0, 0], bar * 4)

            last = -1
            for left in range(density, 0, -1):
                pending = sorted(t for t in forced if t > last)
                logits = self._logits(state, BEAT_T)
                if len(pending) == left:
                    tick = pending[0]
                else:
                    allowed = np.zeros(TICKS_PER_BAR + 1, bool)
                    hi = TICKS_PER_BAR - left  # leave a tick for each beat still due
                    allowed[last + 2:hi + 2] = True
                    tick = self._pick(logits, "beat", allowed,
                                      template and template.tick_bias(last, self.repetition)) - 1
                    if pending and tick >= pending[0]:
                        tick = pending[0]  # at or after a visual beat: onto the visual beat
                if tick in forced:
                    strength = forced[tick]
                else:
                    allowed = np.zeros(MAX_STRENGTH + 1, bool)
                    allowed[1:] = True
                    # a visual beat's strength is the video's to set (with probability C)
                    # or the model's: neither the template nor calm chords lean on it
                    visual = bar * TICKS_PER_BAR + tick in targets.beats
                    bias = None if template is None or visual else \
                        template.strength_bias(tick, self.repetition)
                    if sparse > 0 and not visual:
                        full = np.where(np.arange(MAX_STRENGTH + 1) >= CALM_NOTES,
                                        CALM_CHORD * sparse, 0.0)
                        bias = full if bias is None else bias + full
                    strength = self._pick(logits, "strength", allowed, bias)
                last = tick
                beat_index = (bar * TICKS_PER_BAR + tick) // TICKS_PER_BEAT
                emit([BEAT_T, tick + 1, left + 1, strength, 0, 0, 0], beat_index)
                self._notes(state, strength, beat_index, emit, bar * TICKS_PER_BAR + tick, calm,
                            template)
            memory.record(tokens, start, self._fills)
            if progress is not None:
                progress((bar + 1) / targets.n_bars)
        tokens.append([EOS, 0, 0, 0, 0, 0, 0])
        return np.array(tokens, dtype=np.int64)

    def _fills(self, bar):
        """Ticks of ``bar`` where the drums leave the groove (the form plan's fills)."""
        plan = self.form_plan
        return plan.fills[bar] if plan is not None and bar < plan.n_bars else ()

    def _template(self, memory, bar):
        """What ``bar`` re-uses (a :class:`_Template`), or None (repetition 0, or nothing to
        re-use yet)."""
        if self.repetition <= 0 or not memory.bars:
            return None
        fills = set(self._fills(bar))
        groove = memory.groove[bar % 2] or memory.groove[(bar - 1) % 2]
        drums = {t: [(DRUMS, p, 1) for p in pitches] for t, pitches in (groove or {}).items()
                 if t not in fills} if DRUMS in self.group_ids else {}
        source = self.form_plan.pitched_source[bar] if self.form_plan is not None else -1
        pitched = {}
        if 0 <= source < len(memory.bars):
            for tick, inst, pitch, duration in memory.bars[source].notes:
                if inst == DRUMS or inst not in self.group_ids:
                    continue
                if self.plan is not None:
                    pitch = self.plan.transpose(pitch, source * TICKS_PER_BAR + tick,
                                                bar * TICKS_PER_BAR + tick)
                lo, hi = self.pitch_range[GROUPS[inst - 1]]
                while pitch > hi and pitch - 12 >= lo:
                    pitch -= 12
                while pitch < lo and pitch + 12 <= hi:
                    pitch += 12
                pitched.setdefault(tick, {}).setdefault((inst, pitch), duration)
        # the bar whose onset ticks and density this one leans towards: the pitched source,
        # else the bar two back (one back for the second bar), like the groove
        reference = memory.bars[source if 0 <= source < len(memory.bars) else
                                len(memory.bars) - (2 if len(memory.bars) >= 2 else 1)]
        notes = {}
        for tick in set(drums) | set(pitched):
            notes[tick] = sorted(drums.get(tick, []) + [(i, p, d) for (i, p), d in
                                                        pitched.get(tick, {}).items()])
        # how many notes each tick asks for: the template's, or with the pitched part free,
        # the groove's drums plus the reference bar's pitched count
        counts = {}
        for tick in set(notes) | set(reference.ticks):
            pitched_count = len(pitched.get(tick, {})) if source >= 0 else \
                reference.pitched_counts.get(tick, 0)
            counts[tick] = len(drums.get(tick, [])) + pitched_count
        return _Template(notes=notes, counts=counts, density=reference.density,
                         ticks=sorted(set(notes) | set(reference.ticks)),
                         groove=bool(drums), fills=fills)

    def _notes(self, state, strength, beat_index, emit, tick, calm, template=None):
        """Emit ``strength`` notes in strictly increasing (instrument, pitch) order, at absolute
        16th ``tick``, in a bar whose calm (0..1) favours held notes; ``template`` (or None)
        leans the choices towards the notes it holds at this tick."""
        last_inst, last_pitch = 0, -1
        r = self.repetition
        for left in range(strength, 0, -1):
            logits = self._logits(state, NOTE)
            room = {g: self._pitch_mask(g, last_pitch if g == last_inst else -1)
                    for g in self.group_ids if g >= last_inst}
            later = {g: sum(room[h].sum() for h in room if h > g) for g in room}
            # An instrument is possible if it and those after it can hold the notes still due.
            allowed = np.zeros(len(GROUPS) + 1, bool)
            for g, mask in room.items():
                allowed[g] = mask.any() and mask.sum() + later[g] >= left
            ahead = template.ahead(tick % TICKS_PER_BAR, last_inst, last_pitch) \
                if template is not None else None
            inst = self._pick(logits, "instrument", allowed, None if template is None else
                              template.instrument_bias(tick % TICKS_PER_BAR, ahead, r))
            mask = room[inst].copy()
            keep_free = left - 1 - later[inst]  # top pitches kept for this instrument's next notes
            if keep_free > 0:
                mask[np.flatnonzero(mask)[-keep_free:]] = False
            prior = None
            if self.plan is not None:
                prior = np.concatenate([[0.0], self.plan.pitch_prior(GROUPS[inst - 1], tick)])
            if ahead is not None:
                bias = template.pitch_bias(tick % TICKS_PER_BAR, ahead, inst, r)
                if bias is not None:
                    prior = bias if prior is None else prior + bias
            pitch = self._pick(logits, "pitch", np.concatenate([[False], mask]), prior) - 1
            if inst == GROUP_ID["drums"]:
                duration = 1
            else:
                n_durations = logits["duration"].shape[-1]
                allowed = np.ones(n_durations, bool)
                allowed[0] = False
                hold = np.where(np.arange(n_durations) >= HOLD_TICKS, CALM_HOLD * calm, 0.0) \
                    if calm > 0 else None
                if ahead is not None:
                    bias = template.duration_bias(ahead, inst, pitch, n_durations, r)
                    if bias is not None:
                        hold = bias if hold is None else hold + bias
                if self.plan is not None and not self.plan.in_key(pitch):
                    short = np.where(np.arange(n_durations) <= PASSING_TICKS, PASSING_SHORT, 0.0)
                    hold = short if hold is None else hold + short
                duration = self._pick(logits, "duration", allowed, hold)
            emit([NOTE, 0, 0, 0, inst, pitch + 1, duration], beat_index)
            last_inst, last_pitch = inst, pitch

    def _pitch_mask(self, group_id, above):
        """Pitches (0..127) allowed for a group, strictly above ``above``."""
        mask = np.zeros(128, bool)
        lo, hi = self.pitch_range[GROUPS[group_id - 1]]
        mask[max(lo, above + 1):hi + 1] = True
        return mask


@dataclass
class _Bar:
    """A generated bar, as the sampler re-uses it: its notes ``(tick in bar, instrument,
    pitch, duration)``, its density, its onset ticks and each tick's pitched note count."""

    notes: list
    density: int

    @property
    def ticks(self):
        return sorted({n[0] for n in self.notes})

    @property
    def pitched_counts(self):
        counts = {}
        for tick, inst, _, _ in self.notes:
            if inst != DRUMS:
                counts[tick] = counts.get(tick, 0) + 1
        return counts


class _Memory:
    """The bars generated so far and the drum groove: one drum pattern per bar parity (a
    bar leans towards the bar two back). The first bar with drums of each parity sets it; later
    bars change it only on its own ticks, outside fills, as they played them (the groove may
    drift, but a busy bar's extra hits, a sparse bar's gaps and a fill do not become it)."""

    def __init__(self):
        self.bars = []
        self.groove = [None, None]

    def record(self, tokens, start, fills):
        """Read the whole bars in ``tokens[start:]`` into the memory and fold each into the
        groove (``fills(bar)``: the ticks it leaves alone)."""
        first, tick = len(self.bars), 0
        for row in tokens[start:]:
            if row[0] == BAR:
                self.bars.append(_Bar([], row[2] - 1))
            elif row[0] == BEAT_T:
                tick = row[1] - 1
            elif row[0] == NOTE:
                self.bars[-1].notes.append((tick, row[4], row[5] - 1, row[6]))
        for bar in range(first, len(self.bars)):
            self._fold(bar, set(fills(bar)))

    def _fold(self, bar, fills):
        drums = {}
        for tick, inst, pitch, _ in self.bars[bar].notes:
            if inst == DRUMS:
                drums.setdefault(tick, []).append(pitch)
        parity = bar % 2
        if not self.groove[parity]:
            self.groove[parity] = drums
            return
        played = set(self.bars[bar].ticks)
        for tick in list(self.groove[parity]):
            if tick in played and tick not in fills:
                if tick in drums:
                    self.groove[parity][tick] = drums[tick]
                elif len(self.groove[parity]) > 1:
                    del self.groove[parity][tick]


@dataclass
class _Template:
    """What one bar re-uses, and the logit bonus it gives each choice (times the repetition
    strength r): ``notes`` per tick, sorted ``(instrument, pitch, duration)``; ``counts`` the
    notes each tick asks for; ``density`` and ``ticks`` the reference bar's."""

    notes: dict
    counts: dict
    density: int
    ticks: list
    groove: bool     # the bar has a drum groove to keep
    fills: set       # ticks where the drums are free

    def density_bias(self, r):
        bias = np.zeros(TICKS_PER_BAR + 2)
        bias[self.density + 1] = r * REUSE["density"]
        return bias

    def tick_bias(self, last, r):
        bias = np.zeros(TICKS_PER_BAR + 1)
        ahead = [t for t in self.ticks if t > last]
        for t in ahead:
            bias[t + 1] = r * REUSE["tick"]
        if ahead:
            bias[ahead[0] + 1] += r * REUSE["next"]
        return bias

    def strength_bias(self, tick, r):
        """The template's note count at ``tick``; a tick it does not have (a busier bar than
        its reference) leans towards a single note."""
        bias = np.zeros(MAX_STRENGTH + 1)
        bias[min(max(self.counts.get(tick, 0), 1), MAX_STRENGTH)] = r * REUSE["strength"]
        return bias

    def ahead(self, tick, last_inst, last_pitch):
        """The template's notes at ``tick`` still possible after (last_inst, last_pitch)."""
        return [n for n in self.notes.get(tick, ()) if (n[0], n[1]) > (last_inst, last_pitch)]

    def instrument_bias(self, tick, ahead, r):
        bias = np.zeros(len(GROUPS) + 1)
        for inst in {n[0] for n in ahead}:
            bias[inst] = r * REUSE["other"] * REUSE["instrument"]
        if ahead:
            bias[ahead[0][0]] = r * REUSE["instrument"]
        if self.groove and tick not in self.fills and DRUMS not in {n[0] for n in ahead}:
            # a busier bar than its groove: the extra onsets go to the pitched parts
            bias[DRUMS] += r * REUSE["extra_drums"]
        return bias

    def pitch_bias(self, tick, ahead, inst, r):
        """Over the 129 pitch tokens (pitch + 1)."""
        mine = [n[1] for n in ahead if n[0] == inst]
        fill = inst == DRUMS and tick in self.fills
        if not mine and not fill:
            return None
        bias = np.zeros(129)
        for p in mine:
            bias[p + 1] = r * REUSE["other"] * REUSE["pitch"]
        if mine:
            bias[mine[0] + 1] = r * REUSE["pitch"]
        if fill:
            bias[np.array(FILL_KIT) + 1] += r * REUSE["fill"]
        return bias

    def duration_bias(self, ahead, inst, pitch, n_durations, r):
        for i, p, d in ahead:
            if (i, p) == (inst, pitch) and d < n_durations:
                bias = np.zeros(n_durations)
                bias[d] = r * REUSE["duration"]
                return bias
        return None
