"""Write the training data's harmony and dynamics statistics into vbgm_core/assets/.

- ``harmony_stats.json`` (from the prepared token dataset): per genre, the share of minor-key
  songs, the distribution of tonics per mode, the most common 4-bar chord progressions
  (scale degrees of the diatonic triads, bar by bar) per mode, and the chord colour: the share
  of note onsets on the bar chord's root, third, fifth, seventh, other scale tones and tones
  outside the key, for the bass and the others, on and between beats. Read by music/harmony.py.
- ``dynamics_stats.json`` (from the MIDI files themselves: the tokens have no velocity): per
  instrument group, the velocity distribution, how much a song's level varies, and the metric
  accents. Read by music/dynamics.py.

Rebuild after re-preparing the data (about a minute on two cores):

    .venv/bin/python scripts/export_style_stats.py data/midi_genre ../shared/data/midi_genre
"""

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import miditoolkit
import numpy as np

from vbgm_core.files import atomic_path
from vbgm_core.music.harmony import (
    COLOUR_CATEGORIES,
    PHRASE_BARS,
    colour_categories,
    estimate_key,
    label_chord,
)
from vbgm_core.music.instruments import GROUP_ID, GROUPS, group_of
from vbgm_core.music.tokenizer import BAR, BEAT_T, NOTE, TICKS_PER_BAR, TICKS_PER_BEAT
from vbgm_core.training.data import TokenDataset

ASSETS = Path(__file__).resolve().parents[1] / "vbgm_core" / "assets"
TOP_PROGRESSIONS = 32
MIDI_SONGS_PER_GENRE = 60  # velocity statistics: a sample is plenty, parsing MIDI is slow


def song_notes(tokens):
    """(absolute tick, group id, pitch, duration) arrays of a song's notes."""
    kind = tokens[:, 0]
    bar = np.cumsum(kind == BAR) - 1
    last_beat = np.maximum.accumulate(np.where(kind == BEAT_T, np.arange(len(kind)), 0))
    tick = bar * TICKS_PER_BAR + tokens[last_beat, 1] - 1
    note = kind == NOTE
    return tick[note], tokens[note, 4], tokens[note, 5] - 1, tokens[note, 6]


def harmony(ds):
    """Per genre (and "all"): modes, tonics and 4-bar progressions, and the chord colour."""
    per_genre = defaultdict(lambda: {"modes": Counter(), "tonic": defaultdict(Counter),
                                     "progressions": defaultdict(Counter),
                                     "colour": np.zeros((2, 2, len(COLOUR_CATEGORIES)))})
    for row in ds.index:
        if row["split"] != "train":
            continue
        tick, group, pitch, dur = song_notes(np.asarray(ds.tokens[row["offset"]:
                                                                  row["offset"] + row["length"]], dtype=np.int64))
        pitched = group != GROUP_ID["drums"]
        if pitched.sum() < 32:
            continue
        tick, group, pitch, dur = tick[pitched], group[pitched], pitch[pitched], dur[pitched]
        weight = dur * np.where(group == GROUP_ID["bass"], 2.0, 1.0)  # the bass names the chord
        tonic, mode = estimate_key(np.bincount(pitch % 12, weights=dur, minlength=12))
        n_bars = int(tick.max()) // TICKS_PER_BAR + 1
        bars = np.zeros((n_bars, 12))
        np.add.at(bars, (tick // TICKS_PER_BAR, pitch % 12), weight)
        degrees = [label_chord(b, tonic, mode) for b in bars]
        colour = chord_colour(tick, group, pitch, degrees, tonic, mode)
        for g in (row["genre"], "all"):
            stats = per_genre[g]
            stats["modes"][mode] += 1
            stats["tonic"][mode][tonic] += 1
            stats["colour"] += colour
            for start in range(0, n_bars - PHRASE_BARS + 1, PHRASE_BARS):
                phrase = tuple(degrees[start:start + PHRASE_BARS])
                if -1 not in phrase:
                    stats["progressions"][mode][phrase] += 1

    def export(stats):
        songs = sum(stats["modes"].values())
        return {"songs": songs, "minor_share": round(stats["modes"]["minor"] / songs, 4),
                "tonic": {m: [stats["tonic"][m][pc] for pc in range(12)] for m in ("major", "minor")},
                "progressions": {m: [[list(p), c] for p, c in
                                     stats["progressions"][m].most_common(TOP_PROGRESSIONS)]
                                 for m in ("major", "minor")}}

    def export_colour(stats):
        c = stats["colour"]
        return {"songs": sum(stats["modes"].values()),
                **{role: {beat: (c[r, b] / c[r, b].sum()).round(4).tolist()
                          for b, beat in ((1, "on"), (0, "off"))}
                   for r, role in enumerate(("bass", "other"))}}

    source = f"{ds.meta['source']}: train split, keys by Krumhansl-Kessler profiles, chords = " \
             "best diatonic triad per bar (scripts/export_style_stats.py)"
    everything = per_genre.pop("all")
    return {"source": source, "all": export(everything),
            "genres": {g: export(s) for g, s in sorted(per_genre.items())},
            "colour": {"source": f"{source}; share of pitched note onsets per category",
                       "categories": list(COLOUR_CATEGORIES), "all": export_colour(everything),
                       "genres": {g: export_colour(s) for g, s in sorted(per_genre.items())}}}


def chord_colour(tick, group, pitch, degrees, tonic, mode):
    """A song's pitched note onsets counted by role (bass, other), beat position (off, on) and
    ``harmony.COLOUR_CATEGORIES`` against its bar's chord (issue 23: the pitch prior's
    colour): the root, third, fifth, diatonic seventh, the other scale tones, the tones outside
    the key."""
    counts = np.zeros((2, 2, len(COLOUR_CATEGORIES)))
    table = {d: colour_categories(tonic, mode, d) for d in range(7)}
    for t, g, p in zip(tick, group, pitch):
        d = degrees[t // TICKS_PER_BAR]
        if d >= 0:
            counts[int(g != GROUP_ID["bass"]), int(t % TICKS_PER_BEAT == 0), table[d][p % 12]] += 1
    return counts


def dynamics(ds, midi_root):
    rows = defaultdict(list)
    for row in ds.index:
        if row["split"] == "train":
            rows[row["genre"]].append(row["path"])
    velocities = defaultdict(list)
    song_means, song_sds, beat_lift, downbeat_lift = (defaultdict(list) for _ in range(4))
    constant = Counter()
    for genre, paths in sorted(rows.items()):
        for path in paths[::max(1, len(paths) // MIDI_SONGS_PER_GENRE)][:MIDI_SONGS_PER_GENRE]:
            midi = miditoolkit.MidiFile(str(Path(midi_root) / path))
            sixteenth = midi.ticks_per_beat / 4
            by_group = defaultdict(list)
            for inst in midi.instruments:
                group = group_of(inst.program, inst.is_drum)
                if group is not None:
                    by_group[group] += [(n.velocity, round(n.start / sixteenth)) for n in inst.notes]
            for group, notes in by_group.items():
                v = np.array([n[0] for n in notes], float)
                t = np.array([n[1] for n in notes])
                velocities[group] += v.tolist()
                song_means[group].append(v.mean())
                if v.std() == 0:
                    constant[group] += 1  # sequenced without dynamics: no spread to learn
                    continue
                song_sds[group].append(v.std())
                on_beat = t % 4 == 0
                if on_beat.any() and (~on_beat).any():
                    beat_lift[group].append(v[on_beat].mean() - v[~on_beat].mean())
                downbeat = t % TICKS_PER_BAR == 0
                if downbeat.any() and (~downbeat).any():
                    downbeat_lift[group].append(v[downbeat].mean() - v[~downbeat].mean())
    out = {}
    for group in GROUPS:
        v = np.array(velocities[group])
        out[group] = {
            "notes": int(v.size), "songs": len(song_means[group]),
            "constant_velocity_songs": constant[group],
            "mean": round(float(v.mean()), 2),
            "median_song_mean": round(float(np.median(song_means[group])), 2),
            "within_song_sd": round(float(np.median(song_sds[group])), 2),
            "p5": int(np.percentile(v, 5)), "p95": int(np.percentile(v, 95)),
            "beat_lift": round(float(np.median(beat_lift[group])), 2),
            "downbeat_lift": round(float(np.median(downbeat_lift[group])), 2)}
    return {"source": f"{midi_root}: {MIDI_SONGS_PER_GENRE} train songs per genre, note "
                      "velocities by group; spreads and lifts are medians over songs with more "
                      "than one velocity (scripts/export_style_stats.py)",
            "groups": out}


def write(name, data):
    with atomic_path(ASSETS / name) as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    print(f"wrote {ASSETS / name}")


def main(dataset_dir, midi_root):
    ds = TokenDataset(dataset_dir)
    write("harmony_stats.json", harmony(ds))
    write("dynamics_stats.json", dynamics(ds, midi_root))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
