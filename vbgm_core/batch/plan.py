"""What the driver of `vbgm batch` decides before any job starts: each clip's output names,
its seed, and whether the batch's options can run at all.

- Output names (``plan_outputs``) are fixed first: ``OUT/<stem>.mp4|.mid|.json`` when the
  inputs' names are unique, else the inputs' folder structure below their common folder
  (``a/clip.mp4``, ``b/clip.mp4`` → ``OUT/a/clip.*``, ``OUT/b/clip.*``), then a ``-2`` suffix
  for what still collides. An output name never equals an input's path or the summary's.
- Each clip's seed is ``clip_seed(batch seed, file name)``: the same clip gets the same music
  whatever the engine, the worker, the order or the other clips of the batch.
"""

import dataclasses
import hashlib
import os
from pathlib import Path

from ..errors import InputError
from ..options import ScoreOptions
from ..timeline import is_timeline

# kind → suffix of each clip's files: a video gives a scored copy; a timeline a scored
# timeline (.otio: it holds any timeline) and the music WAV it refers to.
VIDEO_OUTPUTS = {"mp4": ".mp4", "midi": ".mid", "report": ".json"}
TIMELINE_OUTPUTS = {"timeline": ".otio", "wav": ".wav", "midi": ".mid", "report": ".json"}
ALL_SUFFIXES = sorted(set(VIDEO_OUTPUTS.values()) | set(TIMELINE_OUTPUTS.values()))


def outputs_of(video):
    """The output kinds and suffixes of one input."""
    return TIMELINE_OUTPUTS if is_timeline(video) else VIDEO_OUTPUTS


def clip_seed(batch_seed, video):
    """The seed a clip is scored with: from the batch seed and the clip's file name only.

    Not its position or completion order, nor its folder: the same clip gives the same music
    on any engine and worker, alone or among others. (A 31-bit non-negative integer, so that
    ``vbgm score CLIP --seed <it>`` reproduces the clip; each clip's report records it.)
    """
    digest = hashlib.sha256(f"vbgm-batch:{int(batch_seed)}:{Path(video).name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def key_of(path):
    """A path as a comparable name: its folder resolved, the name case-folded (a case-insensitive
    file system holds ``Clip.mp4`` and ``clip.mp4`` in one place)."""
    path = Path(path)
    return (os.path.realpath(path.parent), path.name.casefold())


def plan_outputs(videos, outdir, reserved=()):
    """Unique output base names (relative to ``outdir``, '/'-separated, no suffix), in order.

    Args:
        videos: the input paths.
        outdir: the output folder.
        reserved: more paths no output may take (the summary file).

    Raises:
        InputError: the same file given twice.
    """
    paths = [Path(os.path.abspath(v)) for v in videos]
    seen = {}
    for v, p in zip(videos, paths):
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(f"{v}: given twice (also as {seen[real]})")
        seen[real] = v
    stems = [p.stem.casefold() for p in paths]
    if len(set(stems)) == len(stems):
        bases = [p.stem for p in paths]
    else:  # keep the inputs' folder structure below their common folder
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        bases = [p.relative_to(root).with_suffix("").as_posix() for p in paths]
    outdir = Path(outdir)
    taken = {key_of(p) for p in list(paths) + [Path(r) for r in reserved]}
    names = []
    for base in bases:
        name, k = base, 1
        while any(key_of(outdir / f"{name}{s}") in taken for s in ALL_SUFFIXES):
            k += 1
            name = f"{base}-{k}"
        taken.update(key_of(outdir / f"{name}{s}") for s in ALL_SUFFIXES)
        names.append(name)
    return names


class Clip:
    """One input of a batch and what became of it (a row of the summary)."""

    def __init__(self, index, video, name, seed, outdir):
        self.index, self.video, self.name, self.seed = index, str(video), name, seed
        self.outputs = {kind: str(Path(outdir) / f"{name}{s}")
                        for kind, s in outputs_of(video).items()}
        self.status, self.error, self.seconds, self.attempts, self.worker = (
            "pending", None, None, 0, None)

    @property
    def ok(self):
        return self.status == "ok"

    def row(self):
        return {"video": self.video, "name": self.name, "status": self.status,
                "seconds": None if self.seconds is None else round(self.seconds, 3),
                "error": self.error, "attempts": self.attempts, "worker": self.worker,
                "seed": self.seed, "outputs": self.outputs if self.ok else None}


# The options travel as ``score_video``'s keyword arguments (a dict: ``options`` = a
# ``ScoreOptions``, plus ``model``, ``soundfont``...), passed through untouched but for
# the seed. Only the three helpers below know where the seed and the model are.


def batch_seed(kwargs):
    """The batch's seed: ``kwargs["options"].seed``, else ``kwargs["seed"]``, else 0."""
    options = kwargs.get("options")
    if options is not None:
        return int(options.seed)
    return int(kwargs.get("seed") or 0)


def with_seed(kwargs, seed):
    """The keyword arguments with another seed (the caller's left untouched)."""
    options = kwargs.get("options")
    if options is not None:
        return {**kwargs, "options": dataclasses.replace(options, seed=seed)}
    return {**kwargs, "seed": seed}


def score_options(kwargs):
    """The ScoreOptions of the keyword arguments (built from loose option names if need be)."""
    if kwargs.get("options") is not None:
        return kwargs["options"]
    names = {f.name for f in dataclasses.fields(ScoreOptions)}
    return ScoreOptions.from_kwargs(**{k: v for k, v in kwargs.items() if k in names})


def check_options(kwargs):
    """What the driver checks before any worker starts, without loading torch: the model file
    and its genres (from its header), the options, the SoundFont. Raises VbgmError."""
    from ..scorer import model_genres

    genres = model_genres(kwargs.get("model"))
    options = score_options(kwargs)
    if options.genre is not None and options.genre not in genres:
        raise InputError(f"unknown genre {options.genre!r}; the model knows: {', '.join(genres)}")
    soundfont = kwargs.get("soundfont")
    if soundfont and not Path(soundfont).is_file():
        raise InputError(f"{soundfont}: SoundFont not found")
