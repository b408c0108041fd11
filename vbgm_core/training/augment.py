"""Training-time augmentation of token crops (`vbgm train`; validation never augments).

- Transposition: every pitched note of a crop moves by the same number of semitones; drums keep
  their GM key numbers. The shift is clamped so that every instrument stays inside its data pitch
  range: one shift for the whole crop keeps the (instrument, pitch) order of notes within a beat,
  which the grammar relies on.
- Control dropout: the model learns to stay musical when its controls are absent or forced. The
  beat-timing input of a whole crop is withheld (all zeros, as the sampler does without timing),
  and single density / strength values are hidden from the *input* (0 = "none"); the targets
  keep them, so the model still learns to predict them.
"""

import numpy as np
import torch

from ..music.instruments import GROUP_ID, GROUPS
from ..music.tokenizer import ATTRIBUTES, NOTE

_TYPE, _DENSITY, _STRENGTH = (ATTRIBUTES.index(a) for a in ("type", "density", "strength"))
_INSTRUMENT, _PITCH = ATTRIBUTES.index("instrument"), ATTRIBUTES.index("pitch")


def transpose(tokens, shift, pitch_range):
    """A copy of ``tokens`` (N, 7) with pitched notes moved by up to ``shift`` semitones.

    The shift is clamped towards 0 so that no instrument leaves ``pitch_range`` (group name →
    inclusive MIDI range); it may end up 0. Returns (tokens, the shift applied).
    """
    notes = tokens[:, _TYPE] == NOTE
    low, high = -128, 128
    for name in GROUPS:
        if name == "drums":
            continue
        mine = notes & (tokens[:, _INSTRUMENT] == GROUP_ID[name])
        if mine.any():
            pitches = tokens[mine, _PITCH] - 1          # token value = MIDI pitch + 1
            lo, hi = pitch_range[name]
            low = max(low, lo - int(pitches.min()))
            high = min(high, hi - int(pitches.max()))
    shift = int(np.clip(shift, min(low, 0), max(high, 0)))
    if shift == 0:
        return tokens, 0
    out = tokens.copy()
    pitched = notes & (tokens[:, _INSTRUMENT] != GROUP_ID["drums"])
    out[pitched, _PITCH] += shift
    return out, shift


def drop_controls(batch, timing_p, control_p, generator):
    """Inputs for one training batch with the controls dropped out (in place on a copy).

    Args:
        batch: dict from ``CropSampler.batch`` (tokens ``[B, L, 7]``, timing ``[B, L]``...).
        timing_p: probability that a crop's beat-timing input is withheld entirely.
        control_p: probability that each token's density and strength inputs are hidden.
        generator: a torch Generator (the step's data stream: resumes exactly).

    Returns:
        (input tokens, input timing); the batch's own tensors stay the targets.
    """
    tokens, timing = batch["tokens"], batch["timing"]
    if timing_p > 0:
        withheld = torch.rand(tokens.shape[0], generator=generator) < timing_p
        timing = timing.masked_fill(withheld[:, None], 0)
    if control_p > 0:
        tokens = tokens.clone()
        for column in (_DENSITY, _STRENGTH):
            hide = torch.rand(tokens.shape[:2], generator=generator) < control_p
            tokens[..., column] = tokens[..., column].masked_fill(hide, 0)
    return tokens, timing
