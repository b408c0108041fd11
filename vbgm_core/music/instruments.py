"""The paper's five instrument groups and how General MIDI programs fold into them.

The CMT model (like the Lakh Pianoroll Dataset's lpd-5 it was trained on) knows five groups.
Every GM family is folded into the group that plays the same musical role, so that a song keeps
its harmony and melody lines rather than losing them:

| GM family (programs)              | group   | why                                        |
|-----------------------------------|---------|--------------------------------------------|
| piano, chromatic perc., organ 0-23| piano   | keyboards: chords and comping              |
| guitar 24-31, ethnic 104-111      | guitar  | plucked strings (sitar, banjo, koto...)     |
| bass 32-39                        | bass    | the bass line                              |
| strings, ensemble 40-55           | strings | sustained harmony                          |
| brass, reed, pipe 56-79           | strings | sustained melodic lines                    |
| synth lead, synth pad 80-95       | strings | sustained melodic lines / pads             |
| synth effects 96-103,             | dropped | sound design, not notes with a musical role |
| percussive 112-119, sound fx 120+ | dropped | (tuned percussion that is mostly effects)   |
| the drum channel (is_drum)        | drums   | kept with its GM percussion key numbers    |
"""

GROUPS = ("drums", "piano", "guitar", "bass", "strings")

# Token value of each group (0 = none).
GROUP_ID = {name: i + 1 for i, name in enumerate(GROUPS)}

# General MIDI program used to render each group (0-based program numbers).
RENDER_PROGRAM = {"drums": 0, "piano": 0, "guitar": 25, "bass": 33, "strings": 48}


def group_of(program, is_drum):
    """Group name for a MIDI instrument, or None when its family is dropped (see table)."""
    if is_drum:
        return "drums"
    if program < 24:
        return "piano"
    if program < 32 or 104 <= program < 112:
        return "guitar"
    if program < 40:
        return "bass"
    if program < 96:
        return "strings"
    return None


def track_group(instrument):
    """The group a MIDI track plays: its name as ``CPTokenizer.decode`` writes it ("guitar"), or
    as orchestration renames it ("guitar: Distortion Guitar"), else from its program."""
    if instrument.is_drum:
        return "drums"
    named = instrument.name.split(":")[0].strip()
    return named if named in GROUPS else group_of(instrument.program, False)


def mask_of(groups):
    """5-bit instrument-set mask (bit i = GROUPS[i] present) from an iterable of group names."""
    mask = 0
    for name in groups:
        mask |= 1 << GROUPS.index(name)
    return mask


def groups_of(mask):
    """Inverse of mask_of."""
    return tuple(name for i, name in enumerate(GROUPS) if mask >> i & 1)
