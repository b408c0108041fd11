"""Rendering speed: synthesis of a 60 s five-track song (as a multiple of real time) and muxing
into a 10 s clip (stream copy, and a re-encoded range). Run: python benchmarks/bench_render.py"""

import tempfile
import time
from pathlib import Path

import miditoolkit
import numpy as np

from vbgm_core.audio import mux, render

SR = 44100
SONG_S = 60.0
CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "videos" / "bikes.mp4"


def song(seconds=SONG_S, bpm=120.0):
    """Drums (16ths hats, kick, snare), piano chords, bass, guitar and strings for ``seconds``."""
    rng = np.random.default_rng(0)
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [miditoolkit.TempoChange(bpm, 0)]
    tracks = {name: miditoolkit.Instrument(prog, is_drum=name == "drums", name=name)
              for name, prog in (("drums", 0), ("piano", 0), ("bass", 33), ("guitar", 25),
                                 ("strings", 48))}
    for beat in range(int(seconds * bpm / 60)):
        t = beat * 480
        root = 48 + (0, 5, 7, 3)[beat // 4 % 4]
        for k in range(4):
            tracks["drums"].notes.append(miditoolkit.Note(80, 42, t + 120 * k, t + 120 * k + 30))
        tracks["drums"].notes.append(miditoolkit.Note(110, 36 if beat % 2 == 0 else 38, t, t + 60))
        for p in (0, 4, 7):
            tracks["piano"].notes.append(miditoolkit.Note(70, root + 12 + p, t, t + 400))
        tracks["bass"].notes.append(miditoolkit.Note(95, root - 12, t, t + 440))
        tracks["guitar"].notes.append(miditoolkit.Note(60, root + 24 + int(rng.integers(0, 8)),
                                                       t + 240, t + 460))
        if beat % 4 == 0:
            for p in (0, 7, 16):
                tracks["strings"].notes.append(miditoolkit.Note(60, root + p, t, t + 4 * 480))
    midi.instruments = list(tracks.values())
    return midi


def main():
    midi = song()
    n_notes = sum(len(i.notes) for i in midi.instruments)
    start = time.perf_counter()
    synth = render._new_synth(render.find_soundfont(), SR)[1]
    load_s = time.perf_counter() - start
    synth.delete()
    start = time.perf_counter()
    audio = render.render_audio(midi, sample_rate=SR, duration_s=SONG_S)
    total_s = time.perf_counter() - start
    print(f"soundfont {render.find_soundfont().name}: new synth + load {load_s:.2f} s")
    print(f"render {SONG_S:.0f} s, {len(midi.instruments)} tracks, {n_notes} notes: {total_s:.2f} s "
          f"incl. load = {SONG_S / total_s:.0f}x real time "
          f"({SONG_S / max(total_s - load_s, 1e-9):.0f}x without the load); peak {np.abs(audio).max():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render.render_stems(midi, Path(tmp) / "stems", sample_rate=SR, duration_s=SONG_S)
        print(f"stems ({len(midi.instruments)} WAVs, {SONG_S:.0f} s): {time.perf_counter() - start:.2f} s")
    if not CLIP.is_file():
        print(f"mux: skipped ({CLIP} not found)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav = render.write_wav(audio[: 10 * SR], SR, tmp / "music.wav")
        for label, kw in (("replace, video copied", {}),
                          ("mix, range 1.3-8.7 s re-encoded", {"mode": "mix", "start_s": 1.3, "end_s": 8.7})):
            start = time.perf_counter()
            mux.mux(CLIP, wav, tmp / f"{len(label)}.mp4", **kw)
            print(f"mux 10 s clip ({label}): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
