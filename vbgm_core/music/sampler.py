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
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import Cancelled
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

    After ``generate``, ``plan`` is the HarmonyPlan used (None without one).
    """

    def __init__(self, model, genre, instruments, control, seed, sampling=None, timing=True,
                 pitch_range=None, harmony="auto", min_density=0):
        # Users' values are checked once, in options.ScoreOptions; here only the contract.
        assert 0.0 <= control <= 1.0, control
        assert instruments and set(instruments) <= set(GROUPS), instruments
        assert 0 <= min_density <= TICKS_PER_BAR, min_density
        assert harmony is None or harmony == "auto" or isinstance(harmony, HarmonyPlan), harmony
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
        z = rows[0]
        if len(rows) > 1:
            # Guidance only among the choices the genre's own prediction finds plausible
            # (probability >= PLAUSIBLE x the best allowed one), as in contrastive decoding:
            # amplified differences in the unlikely tail made pieces twice as dense.
            p = np.where(allowed, np.exp(z - z[allowed].max()), 0.0)
            allowed = allowed & (p >= PLAUSIBLE)
            z = z + self.sampling.genre_guidance * (z - rows[1:].mean(0))
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
                leave.

        Returns:
            (N, 7) int64 tokens ending with EOS, valid under ``tokens_errors``.
        """
        model, rng = self.model, self.rng
        n_beats = 4 * targets.n_bars
        self.plan = self.harmony
        if self.harmony == "auto":
            self.plan = HarmonyPlan.choose(None, targets.n_bars, targets.cuts, self.seed)
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
        for bar in range(first, targets.n_bars):
            if cancel is not None and cancel():
                raise Cancelled("generation cancelled")
            # Visual beats of this bar that the control keeps (each with probability C).
            forced = {tick - bar * TICKS_PER_BAR: s for tick, s in sorted(targets.beats.items())
                      if bar * TICKS_PER_BAR <= tick < (bar + 1) * TICKS_PER_BAR
                      and rng.random() < self.control}
            logits = self._logits(state, BAR)
            allowed = np.zeros(TICKS_PER_BAR + 2, bool)
            allowed[1 + len(forced):] = True  # room for the forced beats
            density = self._pick(logits, "density", allowed) - 1
            if targets.densities is not None and rng.random() < self.control:
                density = targets.densities[bar]
            density = min(max(density, len(forced), self.min_density), TICKS_PER_BAR)
            calm = max(0.0, (CALM_DENSITY - density) / CALM_DENSITY)
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
                    tick = self._pick(logits, "beat", allowed) - 1
                    if pending and tick >= pending[0]:
                        tick = pending[0]  # at or after a visual beat: onto the visual beat
                if tick in forced:
                    strength = forced[tick]
                else:
                    allowed = np.zeros(MAX_STRENGTH + 1, bool)
                    allowed[1:] = True
                    strength = self._pick(logits, "strength", allowed)
                last = tick
                beat_index = (bar * TICKS_PER_BAR + tick) // TICKS_PER_BEAT
                emit([BEAT_T, tick + 1, left + 1, strength, 0, 0, 0], beat_index)
                self._notes(state, strength, beat_index, emit, bar * TICKS_PER_BAR + tick, calm)
            if progress is not None:
                progress((bar + 1) / targets.n_bars)
        tokens.append([EOS, 0, 0, 0, 0, 0, 0])
        return np.array(tokens, dtype=np.int64)

    def _notes(self, state, strength, beat_index, emit, tick, calm):
        """Emit ``strength`` notes in strictly increasing (instrument, pitch) order, at absolute
        16th ``tick``, in a bar whose calm (0..1) favours held notes."""
        last_inst, last_pitch = 0, -1
        for left in range(strength, 0, -1):
            logits = self._logits(state, NOTE)
            room = {g: self._pitch_mask(g, last_pitch if g == last_inst else -1)
                    for g in self.group_ids if g >= last_inst}
            later = {g: sum(room[h].sum() for h in room if h > g) for g in room}
            # An instrument is possible if it and those after it can hold the notes still due.
            allowed = np.zeros(len(GROUPS) + 1, bool)
            for g, mask in room.items():
                allowed[g] = mask.any() and mask.sum() + later[g] >= left
            inst = self._pick(logits, "instrument", allowed)
            mask = room[inst].copy()
            keep_free = left - 1 - later[inst]  # top pitches kept for this instrument's next notes
            if keep_free > 0:
                mask[np.flatnonzero(mask)[-keep_free:]] = False
            prior = None
            if self.plan is not None:
                prior = np.concatenate([[0.0], self.plan.pitch_prior(GROUPS[inst - 1], tick)])
            pitch = self._pick(logits, "pitch", np.concatenate([[False], mask]), prior) - 1
            if inst == GROUP_ID["drums"]:
                duration = 1
            else:
                n_durations = logits["duration"].shape[-1]
                allowed = np.ones(n_durations, bool)
                allowed[0] = False
                hold = np.where(np.arange(n_durations) >= HOLD_TICKS, CALM_HOLD * calm, 0.0)
                duration = self._pick(logits, "duration", allowed, hold if calm > 0 else None)
            emit([NOTE, 0, 0, 0, inst, pitch + 1, duration], beat_index)
            last_inst, last_pitch = inst, pitch

    def _pitch_mask(self, group_id, above):
        """Pitches (0..127) allowed for a group, strictly above ``above``."""
        mask = np.zeros(128, bool)
        lo, hi = self.pitch_range[GROUPS[group_id - 1]]
        mask[max(lo, above + 1):hi + 1] = True
        return mask
