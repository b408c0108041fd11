"""On-disk cache of generated soundtracks, so re-running an editing script does not regenerate.

An entry is a folder ``<cache dir>/<key>/`` holding ``audio.npy`` (float32 [n, 2]),
``music.mid``, ``report.json`` and the analysed ``rhythm.json``, written atomically (a
half-written entry never looks complete). The key hashes the clip's content (its sampled
frames, or the file's bytes for an unedited file clip), its duration, every option that changes
the music, and the identity of the model and SoundFont files and of vbgm itself.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vbgm_core import __version__ as VBGM_VERSION
from vbgm_core.errors import InputError
from vbgm_core.files import atomic_dir
from vbgm_core.video.rhythm import VideoRhythm

# Bump when the entry layout or the meaning of a key changes.
FORMAT_VERSION = 1


def cache_dir():
    """``$VBGM_CACHE_DIR/moviepy``, else ``$XDG_CACHE_HOME/vbgm/moviepy`` (``~/.cache/...``)."""
    root = os.environ.get("VBGM_CACHE_DIR")
    if root:
        return Path(root) / "moviepy"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "vbgm" / "moviepy"


def file_identity(path):
    """A file's resolved path, size and modification time (cheap; changes when it is rewritten)."""
    path = Path(path).resolve()
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def cache_key(content, duration_s, options, model_path, soundfont_path):
    """Hex key of one soundtrack.

    Args:
        content: digest of the clip's frames or file.
        duration_s: the clip's duration in seconds.
        options: dict of the options that change the music (JSON-serialisable).
        model_path, soundfont_path: files whose identity is part of the key.
    """
    facts = {"format": FORMAT_VERSION, "vbgm": VBGM_VERSION, "content": content,
             "duration_s": round(float(duration_s), 6), "options": options,
             "model": file_identity(model_path), "soundfont": file_identity(soundfont_path)}
    blob = json.dumps(facts, sort_keys=True).encode()
    return hashlib.blake2b(blob, digest_size=20).hexdigest()


class Entry(NamedTuple):
    """A cached soundtrack."""

    audio: np.ndarray   # float32 [n, 2]
    report: dict
    rhythm: VideoRhythm
    midi_path: Path


def load(key, folder=None):
    """The complete entry under ``key``, or None when there is none."""
    entry = Path(folder or cache_dir()) / key
    try:
        audio = np.load(entry / "audio.npy")
        report = json.loads((entry / "report.json").read_text())
        rhythm = VideoRhythm.from_json(entry / "rhythm.json")
    except (OSError, ValueError, InputError):
        return None  # absent or unreadable: regenerate (and rewrite it)
    return Entry(audio, report, rhythm, entry / "music.mid")


def store(key, audio, midi, report, rhythm, folder=None):
    """Write an entry atomically, replacing any broken one; returns it."""
    entry = Path(folder or cache_dir()) / key
    entry.parent.mkdir(parents=True, exist_ok=True)  # the cache's own folder, made on first use
    with atomic_dir(entry, overwrite=True) as tmp:
        np.save(tmp / "audio.npy", np.asarray(audio, dtype=np.float32))
        midi.dump(str(tmp / "music.mid"))
        (tmp / "report.json").write_text(json.dumps(report, indent=1, default=str))
        rhythm.to_json(tmp / "rhythm.json")
    return Entry(audio, report, rhythm, entry / "music.mid")
