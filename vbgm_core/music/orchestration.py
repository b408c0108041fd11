"""Which General MIDI program plays each instrument group: drawn from the genre's own songs.

The model writes five groups (instruments.py); which sound plays a group is a separate choice.
Rendering every piece with one program per group (``RENDER_PROGRAM``) makes a rock piece sound
like a country one. ``assets/orchestration.json`` (written by
``scripts/export_orchestration_stats.py``) holds, per genre and group, the share of the
training songs' notes played by each program (and, for drums, by each drum kit); a piece draws
one program per group from its genre's distribution, seeded, and the user can override any
group (``parse_programs``).

Every melodic program 0-127 exists in the General MIDI SoundFonts vbgm renders with
(FluidR3_GM); drum kits are limited to ``DRUM_KITS``, the GS kits that FluidR3_GM has.
"""

import json
import re
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError
from .instruments import GROUPS, track_group

STATS_PATH = Path(__file__).resolve().parents[1] / "assets" / "orchestration.json"

# The 128 General MIDI Level 1 program names (0-based program numbers).
GM_PROGRAM_NAMES = (
    # piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # chromatic percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    # guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics",
    # bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # strings
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    # ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    # brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    # reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    # pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # synth lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # synth pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    # synth effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # ethnic
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    # sound effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)

# Drum kits (program numbers on the drum channel): the GS kits FluidR3_GM has (its bank 128).
# GM level 1 has only the standard kit; SC-55 style players pick these by program change.
DRUM_KITS = {0: "Standard Kit", 8: "Room Kit", 16: "Power Kit", 24: "Electronic Kit",
             25: "TR-808 Kit", 32: "Jazz Kit", 40: "Brush Kit", 48: "Orchestra Kit"}

# Named line-ups a user can start an override from ("acoustic,bass=35").
PRESETS = {
    "acoustic": {"drums": 40, "piano": 0, "guitar": 25, "bass": 32, "strings": 48},
    "electric": {"drums": 16, "piano": 4, "guitar": 29, "bass": 34, "strings": 89},
}

_ENTRY = re.compile(r"^\s*([A-Za-z_]+)\s*=\s*([+-]?\d+)\s*$")


@lru_cache(maxsize=1)
def orchestration_stats():
    """The training data's program distributions (``assets/orchestration.json``), as loaded."""
    return json.loads(STATS_PATH.read_text())


@lru_cache(maxsize=64)
def distribution(genre):
    """Program distribution of each group for ``genre`` (unknown genre: the overall one).

    Returns:
        dict group -> (programs, probabilities): an int array and a float array summing to 1.
    """
    stats = orchestration_stats()
    table = stats["genres"].get(genre, stats["overall"])
    out = {}
    for group in GROUPS:
        shares = table[group]
        programs = np.array([int(p) for p in shares], dtype=np.int64)
        p = np.array(list(shares.values()), dtype=np.float64)
        out[group] = (programs, p / p.sum())  # the asset's shares are rounded
    return out


def program_name(group, program):
    """Readable name of a group's program: a GM program name, or a drum kit's."""
    if group == "drums":
        return DRUM_KITS.get(program, f"Drum Kit {program}")
    return GM_PROGRAM_NAMES[program]


def _check(group, program):
    if group not in GROUPS:
        raise InputError(f"programs: unknown instrument group {group!r} "
                         f"(one of {', '.join(GROUPS)})")
    if isinstance(program, bool) or not isinstance(program, (int, np.integer)):
        raise InputError(f"programs: {group}={program!r} is not a program number")
    if not 0 <= program <= 127:
        raise InputError(f"programs: {group}={program} is outside the General MIDI programs 0..127")
    if group == "drums" and program not in DRUM_KITS:
        kits = ", ".join(f"{k} {n}" for k, n in DRUM_KITS.items())
        raise InputError(f"programs: drums={program} is not a drum kit ({kits})")
    return int(program)


def parse_programs(spec):
    """A user's program choice per group, checked.

    Args:
        spec: None, a dict group -> program, or text such as ``"guitar=30,bass=38"``; a text
            entry without ``=`` names a preset (``PRESETS``) that the entries after it amend,
            e.g. ``"acoustic,bass=35"``.

    Returns:
        dict group -> program (only the groups given).

    Raises:
        InputError: unknown group or preset, a program outside 0..127 (or not a drum kit for
            drums), malformed text.
    """
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {group: _check(group, program) for group, program in spec.items()}
    if not isinstance(spec, str):
        raise InputError(f"programs: expected text like 'guitar=30,bass=38', got {spec!r}")
    out = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        if entry.lower() in PRESETS:
            out.update(PRESETS[entry.lower()])
            continue
        match = _ENTRY.match(entry)
        if match is None:
            if "=" not in entry and entry.isidentifier():
                raise InputError(f"programs: unknown preset {entry!r} (one of {', '.join(PRESETS)})")
            raise InputError(f"programs: malformed entry {entry!r} (expected GROUP=PROGRAM, "
                             "e.g. guitar=30)")
        group = match.group(1).lower()
        out[group] = _check(group, int(match.group(2)))
    return out


def choose_programs(genre, seed, overrides=None):
    """One program per group for a piece: drawn from its genre's songs, seeded.

    Every group is drawn, in ``GROUPS`` order, whatever the overrides, so overriding one group
    leaves the others as the same seed would have chosen them.

    Args:
        genre: genre name; one the data does not know (a user's own model) uses the overall
            distribution.
        seed: int; the same (seed, genre) always gives the same programs.
        overrides: dict or text for ``parse_programs``; its groups win over the draw.

    Returns:
        dict group -> program for all five groups (drums: the kit, 0 = standard).
    """
    overrides = parse_programs(overrides)
    # crc32, not hash(): str hashes change between Python processes. 23 = this stream.
    rng = np.random.default_rng([int(seed), 23, zlib.crc32(str(genre).encode())])
    chosen = {}
    for group, (programs, p) in distribution(genre).items():
        chosen[group] = int(programs[rng.choice(len(programs), p=p)])
    return {**chosen, **overrides}


def apply_programs(midi, programs):
    """Set each track's program and a name that says it (``"guitar: Distortion Guitar"``).

    Args:
        midi: miditoolkit.MidiFile with one track per group (as ``CPTokenizer.decode`` writes);
            changed in place.
        programs: dict group -> program (e.g. from ``choose_programs``); groups missing from it,
            and tracks of no group, are left as they are.

    Returns:
        the same MidiFile.
    """
    programs = parse_programs(programs)
    for inst in midi.instruments:
        group = track_group(inst)
        if group in programs:
            inst.program = programs[group]
            inst.name = f"{group}: {program_name(group, programs[group])}"
    return midi
