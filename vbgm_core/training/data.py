"""The training set: `vbgm prepare` (MIDI folder → dataset directory) and its loader.

Layout of a dataset directory (docs/DESIGN.md): meta.json, tokens.npy (uint8, all songs
concatenated), index.csv (one row per song), stats.json (the music statistics the
video-to-music mapping uses, METHOD.md §1.2).
"""

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from ..errors import InputError, VbgmError
from ..files import Outputs, worker_signals
from ..music.instruments import GROUP_ID, GROUPS, mask_of
from ..music.tokenizer import (
    ATTRIBUTES,
    MAX_STRENGTH,
    NOTE,
    TICKS_PER_BAR,
    VOCAB_SIZES,
    CPTokenizer,
    bar_densities,
    onset_strengths,
)

FORMAT_VERSION = 1
MIDI_SUFFIXES = {".mid", ".midi", ".kar"}
DRUMS_ONLY = mask_of(["drums"])
INDEX_COLUMNS = ("song", "path", "genre", "genre_id", "instruments", "offset", "length",
                 "n_bars", "tempo_bpm", "split")


def split_of(rel_path):
    """train / valid / test (90/5/5), fixed by the file's path so every rebuild agrees."""
    bucket = int(hashlib.md5(rel_path.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def _genres_from_metadata(midi_dir):
    """metadata.csv (path, genre) when the folder has one, else {}."""
    meta = midi_dir / "metadata.csv"
    if not meta.is_file():
        return {}
    with open(meta, newline="") as f:
        return {row["path"]: row["genre"] for row in csv.DictReader(f) if row.get("genre")}


def _find_midi(midi_dir):
    labels = _genres_from_metadata(midi_dir)
    found = []
    for path in sorted(midi_dir.rglob("*")):
        if path.suffix.lower() in MIDI_SUFFIXES and path.is_file():
            rel = path.relative_to(midi_dir).as_posix()
            genre = labels.get(rel) or (rel.split("/")[0] if "/" in rel else "unknown")
            found.append((rel, genre))
    return found


def _encode_one(job):
    """Worker: (abs path, rel path, genre) → (rel, genre, song or None, error or None)."""
    path, rel, genre = job
    try:
        song = CPTokenizer().encode(path)
        if song.instruments == DRUMS_ONLY:
            return rel, genre, None, f"{path}: drums only (no pitched track to learn from)"
        return rel, genre, song, None
    except VbgmError as e:
        return rel, genre, None, str(e)
    except Exception as e:  # one odd file must never stop the batch
        return rel, genre, None, f"{path}: {type(e).__name__}: {e}"


@dataclass
class PrepareSummary:
    output: Path
    n_songs: int
    n_tokens: int
    per_genre: dict
    skipped: list = field(default_factory=list)

    def describe(self):
        lines = [f"wrote {self.output}: {self.n_songs} songs, {self.n_tokens:,} tokens"]
        lines += [f"  {g}: {n} songs" for g, n in sorted(self.per_genre.items())]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s):")
            lines += [f"  {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


def _histogram(values, size):
    return np.bincount(np.asarray(values, dtype=np.int64), minlength=size)[:size].tolist()


def _stats(songs, genres):
    """Bar-density and strength distributions (overall and per genre), tokens per song."""
    density = {g: [] for g in genres}
    strength = []
    for _, genre, song in songs:
        density[genre].append(bar_densities(song.tokens))
        strength.append(onset_strengths(song.tokens)[:, 1])
    all_density = np.concatenate([np.concatenate(v) for v in density.values() if v])
    lengths = np.array([len(s.tokens) for _, _, s in songs])
    return {
        "density_hist": _histogram(all_density, TICKS_PER_BAR + 1),
        "density_hist_per_genre": {g: _histogram(np.concatenate(v), TICKS_PER_BAR + 1)
                                   for g, v in density.items() if v},
        "strength_hist": _histogram(np.concatenate(strength), MAX_STRENGTH + 1),
        "tokens_per_song": {"mean": float(lengths.mean()), "min": int(lengths.min()),
                            "p25": float(np.percentile(lengths, 25)),
                            "median": float(np.median(lengths)),
                            "p75": float(np.percentile(lengths, 75)), "max": int(lengths.max())},
    }


def prepare(midi_dir, output, workers=None, limit=None, overwrite=False, progress=False):
    """Tokenize every MIDI file under ``midi_dir`` into a dataset directory at ``output``.

    Files that fail (corrupt, empty, not 4/4, too long) are skipped and listed; the directory
    appears only when complete (written to a temporary sibling, then renamed).

    Returns:
        PrepareSummary.

    Raises:
        InputError: the folder is missing, holds no MIDI files, or none could be used.
    """
    midi_dir = Path(midi_dir)
    if not midi_dir.is_dir():
        raise InputError(f"{midi_dir}: not a folder")
    outputs = Outputs(inputs=(midi_dir,), overwrite=overwrite)
    outputs.add_folder(output, "dataset folder")
    files = _find_midi(midi_dir)[:limit]
    if not files:
        raise InputError(f"{midi_dir}: no MIDI files (.mid, .midi) found")
    jobs = [(str(midi_dir / rel), rel, genre) for rel, genre in files]
    workers = workers or os.cpu_count() or 1
    songs, skipped = [], []
    with Pool(workers, initializer=worker_signals) as pool:
        results = pool.imap(_encode_one, jobs, chunksize=8)
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(jobs), desc="prepare", unit="song")
        for rel, genre, song, error in results:
            if song is None:
                skipped.append({"path": rel, "reason": error})
            else:
                songs.append((rel, genre, song))
    if not songs:
        raise InputError(f"{midi_dir}: none of the {len(files)} MIDI files could be used "
                         f"(first error: {skipped[0]['reason']})")

    genres = sorted({g for _, g, _ in songs})
    with outputs:
        tmp = outputs.temp(output)
        tokens = np.concatenate([s.tokens for _, _, s in songs]).astype(np.uint8)
        np.save(tmp / "tokens.npy", tokens)
        offset = 0
        with open(tmp / "index.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(INDEX_COLUMNS)
            for i, (rel, genre, song) in enumerate(songs):
                w.writerow((i, rel, genre, genres.index(genre), song.instruments, offset,
                            len(song.tokens), song.n_bars, round(song.tempo_bpm, 3), split_of(rel)))
                offset += len(song.tokens)
        (tmp / "stats.json").write_text(json.dumps(_stats(songs, genres), indent=1))
        meta = {"format_version": FORMAT_VERSION, "genres": genres, "attributes": ATTRIBUTES,
                "vocab_sizes": VOCAB_SIZES, "n_songs": len(songs), "n_tokens": int(offset),
                "source": str(midi_dir), "skipped": skipped}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    per_genre = {g: sum(1 for _, x, _ in songs if x == g) for g in genres}
    return PrepareSummary(Path(output), len(songs), int(offset), per_genre, skipped)


class TokenDataset:
    """A prepared dataset, memory-mapped.

    Attributes:
        genres: genre names; a song's ``genre_id`` indexes this list.
        index: one dict per song (INDEX_COLUMNS; numbers as int/float).
        tokens: (T, 7) uint8 memmap of all songs.
        stats: the statistics of stats.json.
    """

    def __init__(self, path):
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise InputError(f"{path}: not a vbgm dataset (no meta.json; build one with "
                             "`vbgm prepare MIDI_DIR -o DIR`)")
        try:
            self.meta = json.loads((path / "meta.json").read_text())
        except ValueError:
            raise InputError(f"{path / 'meta.json'}: unreadable") from None
        version = self.meta.get("format_version")
        if version != FORMAT_VERSION or list(self.meta.get("vocab_sizes", [])) != list(VOCAB_SIZES):
            raise InputError(f"{path}: dataset format {version} is incompatible with this vbgm "
                             f"(format {FORMAT_VERSION}); rebuild it with `vbgm prepare`")
        self.path = path
        self.genres = self.meta["genres"]
        self.tokens = np.load(path / "tokens.npy", mmap_mode="r")
        with open(path / "index.csv", newline="") as f:
            self.index = [self._row(r) for r in csv.DictReader(f)]
        if not self.index:
            raise InputError(f"{path}: the dataset is empty")
        self.stats = json.loads((path / "stats.json").read_text())

    @staticmethod
    def _row(r):
        for key in ("song", "genre_id", "instruments", "offset", "length", "n_bars"):
            r[key] = int(r[key])
        r["tempo_bpm"] = float(r["tempo_bpm"])
        return r

    def __len__(self):
        return len(self.index)

    def song(self, i):
        """(N, 7) int64 tokens of song ``i``."""
        row = self.index[i]
        return np.asarray(self.tokens[row["offset"]:row["offset"] + row["length"]], dtype=np.int64)

    def split_ids(self, split):
        """Row numbers of the songs in ``split`` (train / valid / test)."""
        return [i for i, r in enumerate(self.index) if r["split"] == split]

    def music_stats(self):
        """What a model trained on this dataset needs at scoring time, stored in its weights'
        metadata (``Scorer``): the bar-density and beat-strength histograms (the video →
        control mapping matches percentiles against them) and each instrument's pitch range,
        the 0.5th-99.5th percentile of its notes (the sampler keeps to it)."""
        tokens = self.tokens
        notes = tokens[:, 0] == NOTE
        pitch_range = {}
        for group in GROUPS:
            pitches = tokens[notes & (tokens[:, 4] == GROUP_ID[group]), 5].astype(np.int64) - 1
            if pitches.size:
                lo, hi = np.percentile(pitches, [0.5, 99.5])
                pitch_range[group] = [int(np.floor(lo)), int(np.ceil(hi))]
            else:   # an instrument the data never plays: the whole keyboard
                pitch_range[group] = [0, 127]
        return {"density_hist": self.stats["density_hist"],
                "strength_hist": self.stats["strength_hist"], "pitch_range": pitch_range,
                "source": f"{self.meta.get('source', self.path)}: {self.meta['n_songs']} songs"}
