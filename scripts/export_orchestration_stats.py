"""Write which General MIDI programs play each instrument group, per genre, into
vbgm_core/assets/orchestration.json (read by vbgm_core/music/orchestration.py).

For every training-split song of the prepared dataset (its index.csv, ``split == "train"``),
every track is folded into its group as the tokenizer does (music/instruments.py) and its notes
are counted under its program; drum tracks under their kit program. Per genre and group the
counts become shares (note-weighted: a program that plays more notes weighs more); programs
under 1% are dropped and the rest renormalised. "overall" pools all training songs.

Drum programs outside the GS kits FluidR3_GM has (``DRUM_KITS``) are counted as the standard
kit: GM players ignore a program change on the drum channel, and the files use such numbers as
leftovers of their sequencers, not as a sound (the printed raw counts show them).

About 0.1 s a song on one free core (5 minutes; 17 beside a training run):

    .venv/bin/python scripts/export_orchestration_stats.py data/midi_genre ../shared/data/midi_genre
"""

import csv
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import miditoolkit

from vbgm_core.files import atomic_path
from vbgm_core.music.instruments import GROUPS, group_of
from vbgm_core.music.orchestration import DRUM_KITS, STATS_PATH, program_name

MIN_SHARE = 0.01


def count_programs(midi_path):
    """Counter (group, program) -> notes of one MIDI file, and its raw drum programs."""
    midi = miditoolkit.MidiFile(str(midi_path))
    counts, raw_drums = Counter(), Counter()
    for inst in midi.instruments:
        group = group_of(inst.program, inst.is_drum)
        if group is None or not inst.notes:
            continue
        program = int(inst.program)
        if group == "drums":
            raw_drums[program] += len(inst.notes)
            program = program if program in DRUM_KITS else 0
        counts[group, program] += len(inst.notes)
    return counts, raw_drums


def shares(counter):
    """Note counts -> shares, programs under MIN_SHARE dropped, renormalised, 4 decimals."""
    total = sum(counter.values())
    kept = {p: c for p, c in counter.items() if c / total >= MIN_SHARE}
    kept_total = sum(kept.values())
    return {str(p): round(c / kept_total, 4) for p, c in sorted(kept.items(), key=lambda x: -x[1])}


def total_variation(a, b):
    """Total variation distance between two {program: share} distributions."""
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def to_text(data):
    """JSON with every innermost object on one line: a group's distribution reads as a row."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return re.sub(r"\{[^{}\[\]]*\}", lambda m: re.sub(r"\s*\n\s*", " ", m.group(0)), text) + "\n"


def main(dataset, midi_root):
    with open(Path(dataset) / "index.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    per_genre = defaultdict(lambda: defaultdict(Counter))
    raw_drums = defaultdict(Counter)
    songs = Counter()
    for i, row in enumerate(rows):
        counts, raw = count_programs(Path(midi_root) / row["path"])
        songs[row["genre"]] += 1
        raw_drums[row["genre"]].update(raw)
        for (group, program), n in counts.items():
            for key in (row["genre"], "overall"):
                per_genre[key][group][program] += n
        if (i + 1) % 500 == 0:
            print(f"{i + 1}/{len(rows)} songs", file=sys.stderr)

    overall = per_genre.pop("overall")
    genres = sorted(per_genre)
    data = {
        "_about": (
            f"Share of notes per General MIDI program, per genre and instrument group, in the "
            f"training split of {midi_root} ({len(rows)} songs of {dataset}/index.csv with "
            f"split == train, all of them). Tracks fold into groups as music/instruments.py does; "
            f"drums: the kit program, numbers that are not a GS kit of FluidR3_GM counted as 0 "
            f"(standard). Programs under {MIN_SHARE:.0%} of a group's notes dropped, the rest "
            f"renormalised; 'overall' pools all genres. Written by "
            f"scripts/export_orchestration_stats.py."),
        "songs": {g: songs[g] for g in genres},
        "notes": {g: {group: sum(per_genre[g][group].values()) for group in GROUPS}
                  for g in genres},
        "overall": {group: shares(overall[group]) for group in GROUPS},
        "genres": {g: {group: shares(per_genre[g][group]) for group in GROUPS} for g in genres},
    }
    with atomic_path(STATS_PATH) as tmp:
        tmp.write_text(to_text(data))

    for group in GROUPS:
        print(f"\n{group}")
        for g in genres + ["overall"]:
            dist = data["genres"][g][group] if g != "overall" else data["overall"][group]
            top = ", ".join(f"{program_name(group, int(p))} ({p}) {s:.0%}"
                            for p, s in list(dist.items())[:5])
            print(f"  {g:12s} {top}")
    print("\nraw drum programs (notes, before folding into the GS kits):")
    for g in genres:
        total = sum(raw_drums[g].values())
        print(f"  {g:12s} " + ", ".join(f"{p}: {c / total:.1%}" for p, c in raw_drums[g].most_common(8)))
    print("\ntotal variation distance between genres' distributions:")
    for group in GROUPS:
        print(f"  {group:12s} " + " ".join(f"{b[:7]:>7s}" for b in genres))
        for a in genres:
            print(f"    {a:10s} " + " ".join(
                f"{total_variation(data['genres'][a][group], data['genres'][b][group]):7.2f}"
                for b in genres))
    print(f"wrote {STATS_PATH}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
