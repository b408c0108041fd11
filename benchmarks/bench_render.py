"""Rendering speed: synthesis and streamed mastering of a 60 s five-track song (as a multiple
of real time, each pass's CPU seconds), stems, and muxing into a 10 s clip (from a WAV with the
video copied and a re-encoded range; streamed into ffmpeg's stdin, measured after the AAC
encode). Run: python benchmarks/bench_render.py [--seconds 60]"""

import argparse
import resource
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


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main():
    from vbgm_core.audio.master import MUX_TRUE_PEAK_DBTP, Master
    from vbgm_core.audio.mix import GainCurve, Mix, mux_music

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=SONG_S)
    seconds = ap.parse_args().seconds
    midi = song(seconds)
    n_notes = sum(len(i.notes) for i in midi.instruments)
    start = time.perf_counter()
    synth = render._new_synth(render.find_soundfont(), SR)[1]
    load_s = time.perf_counter() - start
    synth.delete()
    print(f"soundfont {render.find_soundfont().name}: new synth + load {load_s:.2f} s; "
          f"{len(midi.instruments)} tracks, {n_notes} notes, {seconds:.0f} s; FluidSynth on "
          f"{render.SYNTH_CORES} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        c0, t0 = _cpu(), time.perf_counter()
        piece, peak = render.synthesize_piece(midi, SR, duration_s=seconds)
        c1, t1 = _cpu(), time.perf_counter()
        with piece:
            m = Master(-14.0)
            m.process(piece, scale=render._normaliser(peak), clip=render.PEAK)
            c2, t2 = _cpu(), time.perf_counter()
            m.solve(piece)
            c3, t3 = _cpu(), time.perf_counter()
            writer = render.WavWriter(tmp / "music.wav", SR)
            measured = piece.play([writer])
            writer.close()
            c4, t4 = _cpu(), time.perf_counter()
            for name, (c, t) in (("synthesis", (c1 - c0, t1 - t0)),
                                 ("reverb+compression+measure", (c2 - c1, t2 - t1)),
                                 (f"solve ({piece.trials} trial passes)", (c3 - c2, t3 - t2)),
                                 ("final pass to WAV, measured", (c4 - c3, t4 - t3))):
                print(f"  {name}: {t:.2f} s wall, {c:.2f} CPU-s ({seconds / max(c, 1e-9):.0f}x "
                      "real time per CPU)")
            print(f"  mastered: {measured['loudness_lufs']:.2f} LUFS, "
                  f"{measured['true_peak_dbtp']:.2f} dBTP, {measured['clipped_samples']} clipped;"
                  f" total {t4 - t0:.2f} s wall, {c4 - c0:.2f} CPU-s")
            if CLIP.is_file():
                n = 10 * SR
                mix = Mix("replace", GainCurve.constant(0.0, 10.0), -10.5)

                c5, t5 = _cpu(), time.perf_counter()
                gain, ceiling, _ = m.solve(piece, MUX_TRUE_PEAK_DBTP)   # the muxed copy's

                def play(sink, trim_db, first):
                    piece.n, full = n, piece.n     # the first 10 s
                    try:
                        piece.play([], measure=False, also=[((gain, ceiling, trim_db), [sink])])
                    finally:
                        piece.n = full
                got = mux_music(CLIP, play, SR, tmp / "streamed.mp4", mix, ceiling_dbtp=-1.0)
                print(f"mux 10 s clip, its own rendition (ceiling {MUX_TRUE_PEAK_DBTP} dBTP) "
                      "streamed into ffmpeg (video copied), verified and measured after AAC:"
                      f" {time.perf_counter() - t5:.2f} s, {_cpu() - c5:.2f} CPU-s; "
                      f"{got['loudness_lufs']:.2f} LUFS, {got['true_peak_dbtp']:.2f} dBTP, "
                      f"{got['encodes']} encode(s)")
    start = time.perf_counter()
    audio = render.render_audio(midi, sample_rate=SR, duration_s=seconds)
    total_s = time.perf_counter() - start
    print(f"render_audio (peak normalised, one array) {seconds:.0f} s: {total_s:.2f} s = "
          f"{seconds / total_s:.0f}x real time; peak {np.abs(audio).max():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render.render_stems(midi, Path(tmp) / "stems", sample_rate=SR, duration_s=seconds)
        print(f"stems ({len(midi.instruments)} WAVs, {seconds:.0f} s, streamed: synthesized "
              f"twice): {time.perf_counter() - start:.2f} s")
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
            print(f"mux 10 s clip from a WAV ({label}): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
