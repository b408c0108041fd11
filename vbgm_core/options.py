"""What a user may choose about the music: one frozen dataclass, its defaults and its checks.

Every entry point builds a :class:`ScoreOptions`: the CLI from its arguments (its flags are
generated from the fields below, so `score`, `batch` and `eval` cannot drift apart), the Python
API and the MoviePy effect from keyword arguments, the Blender add-on through the CLI. A new
option is one field here (default, help, check) and is then everywhere; the report records the
options whole (``to_dict``).

The model-dependent checks (is the genre one the model knows?) belong to the ``Scorer``, which
owns the model; everything else is checked here, once.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from .audio import mix as duck
from .errors import InputError
from .music.harmony import check_mode, parse_key
from .music.instruments import GROUPS
from .music.sampling import Sampling

# A user tempo outside this range is refused (the music grid would be absurd).
TEMPO_RANGE = (30.0, 300.0)


def _flag(help, metavar=None, flag=None, choices=None):
    """Field metadata: the option's CLI help, metavar, flag (default ``--field-name``) and
    choices."""
    return {"help": help, "metavar": metavar, "flag": flag, "choices": choices}


def _integer(value, name, low, high):
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"{name} {number} is outside {low}..{high}")
    return number


def _number(value, name):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, not {value!r}") from None
    return number


def _instruments(value):
    """"drums,bass" / ["drums", "bass"] / None → a tuple in GROUPS order, or None (= all)."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    names = [str(n).strip() for n in names]
    if not any(names):
        raise InputError("--instruments names no instrument; leave it out to use all of "
                         f"{', '.join(GROUPS)}")
    bad = [n for n in names if n not in GROUPS]
    if bad:
        raise InputError(f"unknown instrument(s) {', '.join(bad)}; choose from {', '.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in names)


def _tempo(value):
    """"auto" / None → None (from the video); a number of BPM inside TEMPO_RANGE."""
    if value is None or value == "auto":
        return None
    try:
        bpm = float(value)
    except (TypeError, ValueError):
        raise InputError(f"tempo must be 'auto' or a number of BPM, not {value!r}") from None
    if not (math.isfinite(bpm) and TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]):
        raise InputError(f"tempo {value} BPM is outside {TEMPO_RANGE[0]:g}-{TEMPO_RANGE[1]:g}")
    return bpm


def _control(value):
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise InputError(f"control degree must be a number in [0, 1], not {value!r}") from None
    if not 0.0 <= c <= 1.0:
        raise InputError(f"control degree {value} is outside [0, 1]")
    return c


def _seed(value):
    """Any integer, negative ones included (the sampler reads it modulo 2**64)."""
    if isinstance(value, bool):
        raise InputError(f"seed must be an integer, not {value!r}")
    try:
        seed = int(value)
        if seed != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"seed must be an integer, not {value!r}") from None
    return seed


def _sampling(value):
    if value is None:
        return Sampling()
    if isinstance(value, Sampling):
        return value
    if isinstance(value, str):
        value = value.split()
    return Sampling.parse(value)


@dataclass(frozen=True)
class ScoreOptions:
    """The music's options. Construct with keyword arguments; values are checked and normalised
    (``ScoreOptions(instruments="drums,bass", tempo="auto")`` is valid).

    Raises:
        InputError: a value out of range, with one line naming the option.
    """

    genre: str | None = field(default=None, metadata=_flag(
        "genre of the model (`vbgm genres` lists them; default: pop where the model has it)"))
    instruments: tuple | None = field(default=None, metadata=_flag(
        f"comma-separated subset of {','.join(GROUPS)} (default: all)", "A,B"))
    control: float = field(default=0.7, metadata=_flag(
        "control degree C in [0, 1]: 0 free music, 1 follows the video fully (default 0.7, the "
        "paper's choice)", "C"))
    tempo: float | None = field(default=None, metadata=_flag(
        f"auto (from the video) or BPM ({TEMPO_RANGE[0]:g}-{TEMPO_RANGE[1]:g})", "auto|BPM"))
    seed: int = field(default=0, metadata=_flag(
        "same seed, same music (default 0; any integer)", "N"))
    sampling: Sampling = field(default_factory=Sampling, metadata=_flag(
        "per-attribute sampling, e.g. pitch.temperature=0.9 beat.top_p=0.95 genre.guidance=1 "
        "(defaults: temperature 1.2 for beat and density, 1.0 elsewhere; top-p 0.9; genre "
        "guidance 0)", "ATTR.SETTING=VALUE"))
    # Harmony, calm and loudness (docs/MUSIC.md).
    key: str = field(default="auto", metadata=_flag(
        "key of the piece: auto (drawn from the genre's songs and the seed) or a pitch class "
        "such as C, F#, Bb", "auto|KEY"))
    mode: str = field(default="auto", metadata=_flag(
        "auto (from the genre's songs and the seed), major or minor", "auto|major|minor"))
    min_density: int = field(default=3, metadata=_flag(
        "fewest onsets in any bar, so that calm footage gets calm music rather than silence "
        "(default 3; 0 lets bars be as sparse as the video says)", "N"))
    loudness: float = field(default=-14.0, metadata=_flag(
        "integrated loudness of the music, LUFS (default -14, web video; -23 for broadcast)",
        "LUFS"))
    # How the music meets the clip's own sound (duck.py): the written WAV/MIDI/stems are the
    # music alone; these levels apply in the muxed video, the MoviePy mix, Blender's strips.
    mix: str = field(default="replace", metadata=_flag(
        "replace the video's audio, mix the music under it, or duck: mix, with the music "
        "lowered wherever someone speaks (default replace)", choices=duck.MIX_MODES))
    music_gain_db: float = field(default=duck.DEFAULT_MUSIC_GAIN_DB, metadata=_flag(
        "level of the music in the mix, dB (default 0)", "DB", flag="--music-gain"))
    original_gain_db: float = field(default=duck.DEFAULT_ORIGINAL_GAIN_DB, metadata=_flag(
        f"level of the video's own sound with --mix mix/duck, dB (default "
        f"{duck.DEFAULT_ORIGINAL_GAIN_DB:g})", "DB", flag="--original-gain"))
    duck_depth_db: float = field(default=duck.DEFAULT_DEPTH_DB, metadata=_flag(
        f"how far the music drops under speech, dB (default {duck.DEFAULT_DEPTH_DB:g})", "DB",
        flag="--duck-depth"))
    duck_attack_s: float = field(default=duck.DEFAULT_ATTACK_S, metadata=_flag(
        f"seconds the music takes to drop as speech starts (default "
        f"{duck.DEFAULT_ATTACK_S:g})", "S", flag="--duck-attack"))
    duck_release_s: float = field(default=duck.DEFAULT_RELEASE_S, metadata=_flag(
        f"seconds the music takes to come back after speech (default "
        f"{duck.DEFAULT_RELEASE_S:g})", "S", flag="--duck-release"))

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.genre is not None and not isinstance(self.genre, str):
            raise InputError(f"genre must be a name, not {self.genre!r}")
        set_("instruments", _instruments(self.instruments))
        set_("control", _control(self.control))
        set_("tempo", _tempo(self.tempo))
        set_("seed", _seed(self.seed))
        set_("sampling", _sampling(self.sampling))
        if str(self.key).lower() != "auto":
            parse_key(self.key)                  # an unknown key name is an InputError
        set_("mode", check_mode(self.mode) or "auto")
        set_("min_density", _integer(self.min_density, "min density", 0, 16))
        loudness = _number(self.loudness, "loudness")
        if not -70.0 <= loudness <= -5.0:
            raise InputError(f"loudness {self.loudness} LUFS is outside -70..-5")
        set_("loudness", loudness)
        for name in ("music_gain_db", "original_gain_db", "duck_depth_db", "duck_attack_s",
                     "duck_release_s"):
            set_(name, _number(getattr(self, name), name.replace("_", " ")))
        duck.check_mix(self.mix, self.music_gain_db, self.original_gain_db, self.duck_depth_db,
                       self.duck_attack_s, self.duck_release_s)

    @classmethod
    def from_kwargs(cls, base=None, **kwargs):
        """Options from keyword arguments (None = the default, or ``base``'s value); an
        unknown name is an InputError naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        given = {k: v for k, v in kwargs.items() if v is not None}
        return dataclasses.replace(base, **given) if base is not None else cls(**given)

    @classmethod
    def add_arguments(cls, parser):
        """Add one ``--flag`` per option to an argparse parser (defaults stay None: unset)."""
        for f in dataclasses.fields(cls):
            meta = f.metadata
            flag = meta["flag"] or "--" + f.name.replace("_", "-")
            extra = {"nargs": "+"} if f.name == "sampling" else {}
            parser.add_argument(flag, dest=f.name, metavar=meta["metavar"], help=meta["help"],
                                choices=meta["choices"], **extra)

    @classmethod
    def from_args(cls, args):
        """Options from parsed CLI arguments (those left unset take the defaults)."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                  if getattr(args, f.name, None) is not None}
        return cls(**values)

    def replace(self, **changes):
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Every option as JSON-able values (for reports and cache keys)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Sampling):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
