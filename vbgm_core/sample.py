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
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import Cancelled, InputError
from .music.instruments import GROUP_ID, GROUPS
from .music.tokenizer import (BAR, BEAT_T, EOS, MAX_STRENGTH, NOTE, TICKS_PER_BAR, TICKS_PER_BEAT,
                              TIMING_BINS)

# Pitch range of each group, inclusive: the 0.5th-99.5th percentiles of the midi_genre training
# notes (drums: GM percussion keys). A weak model's stray pitches (a bass at 115) are masked out.
PITCH_RANGE = {"drums": (35, 82), "piano": (33, 93), "guitar": (38, 79), "bass": (25, 74),
               "strings": (36, 91)}


# Genre guidance keeps to choices at least this likely relative to the best one (Li et al. 2023,
# contrastive decoding, use 0.1).
PLAUSIBLE = 0.1


@dataclass
class Sampling:
    """Per-attribute temperature and nucleus (top-p). Defaults follow the authors' settings
    (METHOD.md §6: beat/density temperature 1.2, top-p 0.9 elsewhere), except duration, for
    which their temperature 2 gave scattered lengths here; 1.0 is used.

    ``genre_guidance`` w steers towards the genre: every attribute's logits become
    l(genre) + w * (l(genre) - mean of l(other genres)), the model run once per genre in a
    batch (0 = off, one run). It amplifies what the model learned distinguishes the genres."""

    temperature: dict = field(default_factory=lambda: {
        "beat": 1.2, "density": 1.2, "strength": 1.0, "instrument": 1.0, "pitch": 1.0,
        "duration": 1.0})
    top_p: dict = field(default_factory=lambda: {
        "beat": 0.9, "density": 0.9, "strength": 0.9, "instrument": 0.9, "pitch": 0.9,
        "duration": 0.9})
    genre_guidance: float = 0.0

    @classmethod
    def parse(cls, overrides):
        """Defaults changed by ``ATTRIBUTE.temperature=T`` / ``ATTRIBUTE.top_p=P`` /
        ``genre.guidance=W`` strings.

        Raises:
            InputError: an unknown attribute or setting, or a value out of range.
        """
        sampling = cls()
        limits = {"temperature": (sampling.temperature, 10.0), "top_p": (sampling.top_p, 1.0)}
        for item in overrides or ():
            key, _, value = item.partition("=")
            attr, _, setting = key.strip().partition(".")
            if (attr, setting) == ("genre", "guidance"):
                sampling.genre_guidance = _setting_value(item, value, "guidance", 10.0, zero_ok=True)
                continue
            if setting not in limits or attr not in sampling.top_p:
                raise InputError(f"sampling setting {item!r}: use ATTRIBUTE.temperature=T or "
                                 f"ATTRIBUTE.top_p=P (ATTRIBUTE one of {', '.join(sampling.top_p)}) or "
                                 f"genre.guidance=W")
            table, high = limits[setting]
            table[attr] = _setting_value(item, value, setting, high)
        return sampling


def _setting_value(item, value, name, high, zero_ok=False):
    """``value`` as a number in (0, high], or [0, high] if ``zero_ok``; else an InputError."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (0 <= number if zero_ok else 0 < number) or number > high:
        raise InputError(f"sampling setting {item!r}: {name} must be in "
                         f"{'[' if zero_ok else '('}0, {high:g}]")
    return number


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

    @classmethod
    def from_rhythm(cls, rhythm):
        """Targets of a VideoRhythm (its visual beats include the cuts, at full strength)."""
        limit = rhythm.n_bars * TICKS_PER_BAR
        beats = {b.tick: min(max(b.strength, 1), MAX_STRENGTH)
                 for b in rhythm.visual_beats if 0 <= b.tick < limit}
        return cls(rhythm.n_bars, [b.density for b in rhythm.bars], beats)


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
    """

    def __init__(self, model, genre, instruments, control=0.7, seed=0, sampling=None, timing=True):
        if not 0.0 <= control <= 1.0:
            raise InputError(f"control degree {control} is outside [0, 1]")
        unknown = [i for i in instruments if i not in GROUPS]
        if unknown or not instruments:
            raise InputError(f"unknown instrument(s) {unknown or '(none given)'}; "
                             f"choose from {', '.join(GROUPS)}")
        self.model = model
        self.group_ids = sorted(GROUP_ID[i] for i in instruments)
        self.control = control
        self.rng = np.random.default_rng(seed)
        self.sampling = sampling or Sampling()
        self.timing = timing
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

    def _pick(self, logits, name, allowed):
        rows = logits[name]
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

    def generate(self, targets, progress=None, cancel=None):
        """Sample the piece.

        Args:
            targets: :class:`Targets` (n_bars is always honoured; densities/beats with prob C).
            progress: optional callable(fraction) called once per bar.
            cancel: optional callable() → True to stop (raises Cancelled).

        Returns:
            (N, 7) int64 tokens ending with EOS, valid under ``tokens_errors``.
        """
        model, rng = self.model, self.rng
        n_beats = 4 * targets.n_bars
        batch = len(self.genres)
        mask = [1.0 if GROUP_ID[g] in self.group_ids else 0.0 for g in GROUPS]
        state = model.start(torch.tensor(self.genres), torch.tensor([mask] * batch))
        tokens = []

        def emit(row, beat_index):
            tokens.append(row)
            timing = round(TIMING_BINS * beat_index / n_beats) if self.timing else 0
            model.step(state, torch.tensor([row] * batch), torch.tensor([beat_index] * batch),
                       torch.tensor([timing] * batch))

        for bar in range(targets.n_bars):
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
            density = min(max(density, len(forced)), TICKS_PER_BAR)
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
                self._notes(state, strength, beat_index, emit)
            if progress is not None:
                progress((bar + 1) / targets.n_bars)
        tokens.append([EOS, 0, 0, 0, 0, 0, 0])
        return np.array(tokens, dtype=np.int64)

    def _notes(self, state, strength, beat_index, emit):
        """Emit ``strength`` notes in strictly increasing (instrument, pitch) order."""
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
            pitch = self._pick(logits, "pitch", np.concatenate([[False], mask])) - 1
            if inst == GROUP_ID["drums"]:
                duration = 1
            else:
                allowed = np.ones(logits["duration"].shape[-1], bool)
                allowed[0] = False
                duration = self._pick(logits, "duration", allowed)
            emit([NOTE, 0, 0, 0, inst, pitch + 1, duration], beat_index)
            last_inst, last_pitch = inst, pitch

    @staticmethod
    def _pitch_mask(group_id, above):
        """Pitches (0..127) allowed for a group, strictly above ``above``."""
        mask = np.zeros(128, bool)
        lo, hi = PITCH_RANGE[GROUPS[group_id - 1]]
        mask[max(lo, above + 1):hi + 1] = True
        return mask
