"""What a user may choose about the music: one frozen dataclass, its defaults, ranges and checks.

Every entry point builds a :class:`ScoreOptions`: the CLI from its arguments (the flags of
`score`, `batch` and `eval` are generated from the fields below, so they cannot drift apart),
the Python API and the MoviePy effect from keyword arguments, the Blender add-on through the
CLI (its panel is tested against :func:`option_specs`). A new option is one field here
(default, range or choices, help) plus its implementation; the report records the options
whole (``to_dict``). Each default is stated here and nowhere else: the stages take the values
as arguments.

The model-dependent checks (is the genre one the model knows?) belong to the ``Scorer``, which
owns the model; everything else is checked here, once, so the stages trust a ``ScoreOptions``.
"""

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import InputError, finite_number
from .music.harmony import PITCH_CLASSES, check_mode, parse_key
from .music.instruments import GROUPS
from .music.orchestration import PRESETS, parse_programs
from .music.sampling import Sampling

MIX_MODES = ("replace", "mix", "duck")
# The options of the mix (audio/mix.py): how the music meets the clip's own sound, not the music.
MIX_OPTIONS = ("mix", "music_gain_db", "original_gain_db", "duck_depth_db", "duck_attack_s",
               "duck_release_s")
MODES = ("auto", "major", "minor")


def _flag(help, metavar=None, flag=None, choices=None, low=None, high=None, name=None,
          unit=""):
    """Field metadata: the option's CLI help, metavar, flag (default ``--field-name``),
    choices; for numbers the inclusive range ``[low, high]``, and the name and unit its
    messages use (default: the flag's words)."""
    return {"help": help, "metavar": metavar, "flag": flag, "choices": choices, "low": low,
            "high": high, "name": name, "unit": unit}


def _number(value, name, low, high, unit=""):
    """A finite number inside ``[low, high]``, else an InputError naming the option."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, not {value!r}")
    number = finite_number(value, name)
    if not low <= number <= high:
        raise InputError(f"{name} {value}{unit} is outside {low:g}..{high:g}{unit}")
    return number


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _integer(value, name, low=-math.inf, high=math.inf):
    """A whole number inside ``[low, high]`` (any size when unbounded)."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a whole number, not {value!r}")
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"{name} {number} is outside {low}..{high}")
    return number


def _genre(value):
    """None (the model's default) or a non-empty name; the model checks that it knows it."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"genre must be a genre name (`vbgm genres` lists them), not {value!r}")
    return value.strip()


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
        f"comma-separated subset of {','.join(GROUPS)} (default: all)", "A,B", choices=GROUPS))
    control: float = field(default=0.7, metadata=_flag(
        "control degree C in [0, 1]: 0 free music, 1 follows the video fully (default 0.7, the "
        "paper's choice)", "C", low=0.0, high=1.0, name="control degree"))
    tempo: float | None = field(default=None, metadata=_flag(
        "auto (from the video) or BPM (30-300)", "auto|BPM", low=30.0, high=300.0,
        unit=" BPM"))
    seed: int = field(default=0, metadata=_flag(
        "same seed, same music (default 0; any integer)", "N"))
    sampling: Sampling = field(default_factory=Sampling, metadata=_flag(
        "per-attribute sampling, e.g. pitch.temperature=0.9 beat.top_p=0.95 genre.guidance=2 "
        "(defaults: temperature 1.2 for beat and density, 1.0 elsewhere; top-p 0.9; genre "
        "guidance 4, 0 = off)", "ATTR.SETTING=VALUE"))
    # Which General MIDI sound plays each group (docs/MUSIC.md): drawn per piece from the
    # genre's songs unless given.
    programs: dict | None = field(default=None, metadata=_flag(
        "the General MIDI program of each group: a preset (" + ", ".join(PRESETS) + ") and/or "
        "GROUP=PROGRAM pairs, e.g. guitar=30,bass=38 (default: drawn from the genre's songs "
        "with the seed; the report says which played)", "SPEC"))
    # Harmony, calm and loudness (docs/MUSIC.md).
    key: str = field(default="auto", metadata=_flag(
        "key of the piece: auto (drawn from the genre's songs and the seed) or a pitch class "
        "such as C, F#, Bb", "auto|KEY", choices=("auto",) + PITCH_CLASSES))
    mode: str = field(default="auto", metadata=_flag(
        "auto (from the genre's songs and the seed), major or minor", "auto|major|minor",
        choices=MODES))
    # Calm is not silence: a still clip maps every bar to the lowest densities, single hits
    # with multi-second gaps (docs/MUSIC.md has the measured choice).
    min_density: int = field(default=3, metadata=_flag(
        "fewest onsets in any bar, so that calm footage gets calm music rather than silence "
        "(default 3; 0 lets bars be as sparse as the video says)", "N", low=0, high=16))
    # Real songs repeat: a groove, phrases that come back (issue 23; docs/MUSIC.md has the
    # measured choice of the default).
    repetition: float = field(default=1.0, metadata=_flag(
        "how much the music repeats itself, 0..1: the drums keep a groove and phrases come back "
        "when the picture does (default 1; lower for more variety, 0 = the model's free "
        "choices)", "R", low=0.0, high=1.0))
    # Below -40 LUFS the music is too quiet to judge or to mix; above -5 it cannot be loud
    # without the limiter crushing it.
    loudness: float = field(default=-14.0, metadata=_flag(
        "integrated loudness of the music, LUFS (default -14, web video; -23 for broadcast; "
        "-40..-5)", "LUFS", low=-40.0, high=-5.0, unit=" LUFS"))
    # How the music meets the clip's own sound (audio/mix.py): the written WAV/MIDI/stems are
    # the music alone; these levels apply in the muxed video, the MoviePy mix, Blender's strips.
    # Levels beyond +-60 dB make silence or overload, never a mix.
    mix: str = field(default="replace", metadata=_flag(
        "replace the video's audio, mix the music under it, or duck: mix, with the music "
        "lowered wherever someone speaks (default replace)", choices=MIX_MODES))
    music_gain_db: float = field(default=0.0, metadata=_flag(
        "level of the music in the mix, dB (default 0; -60..24)", "DB", flag="--music-gain",
        low=-60.0, high=24.0))
    # ≈ 0.3 linear, the original's level before gains were in dB.
    original_gain_db: float = field(default=-10.5, metadata=_flag(
        "level of the video's own sound with --mix mix/duck, dB (default -10.5; -60..24)", "DB",
        flag="--original-gain", low=-60.0, high=24.0))
    # An editor's auto-duck: about -12 dB under dialogue, a quick fade down, a slower fade
    # back up so the music does not jump in at the end of every sentence.
    duck_depth_db: float = field(default=-12.0, metadata=_flag(
        "how far the music drops under speech, dB (default -12; -60..0)", "DB",
        flag="--duck-depth", low=-60.0, high=0.0))
    duck_attack_s: float = field(default=0.3, metadata=_flag(
        "seconds the music takes to drop as speech starts (default 0.3; 0..10)", "S",
        flag="--duck-attack", low=0.0, high=10.0))
    duck_release_s: float = field(default=0.8, metadata=_flag(
        "seconds the music takes to come back after speech (default 0.8; 0..10)", "S",
        flag="--duck-release", low=0.0, high=10.0))

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("genre", _genre(self.genre))
        set_("instruments", _instruments(self.instruments))
        set_("seed", _integer(self.seed, "seed"))   # any integer: the sampler reads it mod 2**64
        set_("sampling", _sampling(self.sampling))
        set_("programs", parse_programs(self.programs) or None)
        if str(self.key).lower() != "auto":
            parse_key(self.key)                  # an unknown key name is an InputError
        set_("mode", check_mode(self.mode) or "auto")
        if self.mix not in MIX_MODES:
            raise InputError(f"mix must be one of {', '.join(MIX_MODES)}, not {self.mix!r}")
        if isinstance(self.tempo, str):
            word = self.tempo.strip().lower()
            if word == "auto":
                set_("tempo", None)
            elif not _is_number(word):
                raise InputError(f"tempo must be 'auto' or a number of BPM, not {self.tempo!r}")
        for f in dataclasses.fields(self):      # every number: finite and inside its range
            low, high, value = f.metadata["low"], f.metadata["high"], getattr(self, f.name)
            if low is None or value is None:
                continue
            name = f.metadata["name"] or _cli_flag(f).lstrip("-").replace("-", " ")
            if f.type is int:
                set_(f.name, _integer(value, name, low, high))
            else:
                set_(f.name, _number(value, name, low, high, f.metadata["unit"]))

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
    def coerce(cls, value, what="options"):
        """``value`` as ScoreOptions: a ScoreOptions, a dict of option names, or None (the
        defaults); anything else is a TypeError that says what is wanted."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.from_kwargs(**value)
        raise TypeError(f"{what} must be a vbgm_core.options.ScoreOptions or a dict of its "
                        f"fields, not {type(value).__name__}")

    @classmethod
    def add_arguments(cls, parser, exclude=()):
        """Add one ``--flag`` per option (but those in ``exclude``) to an argparse parser
        (defaults stay None: unset)."""
        for f in dataclasses.fields(cls):
            if f.name in exclude:
                continue
            meta = f.metadata
            extra = {"nargs": "+"} if f.name == "sampling" else {}
            choices = meta["choices"] if f.name in ("mix", "mode") else None
            parser.add_argument(_cli_flag(f), dest=f.name, metavar=meta["metavar"],
                                help=meta["help"], choices=choices, **extra)

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


def _cli_flag(f):
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def option_specs():
    """Every option's default, choices, range and CLI flag as JSON-able values: what other
    front ends (the Blender panel, which cannot import vbgm_core) are tested against."""
    defaults = ScoreOptions().to_dict()
    return {f.name: {"default": defaults[f.name],
                     "choices": list(f.metadata["choices"]) if f.metadata["choices"] else None,
                     "min": f.metadata["low"], "max": f.metadata["high"], "flag": _cli_flag(f)}
            for f in dataclasses.fields(ScoreOptions)}
