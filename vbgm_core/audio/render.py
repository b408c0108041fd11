"""MIDI → audio with FluidSynth and a General MIDI SoundFont, and per-instrument stems.
(Muxing the track into the video lives in ``mux.py``.)

Synthesis is offline and sample-exact: the MIDI events are scheduled here from miditoolkit's
ticks and tempo map, and FluidSynth renders the samples between consecutive events (no audio
driver, no real-time clock), so the same MIDI always gives the same samples.
"""

import contextlib
import ctypes
import importlib.util
import io
import os
import re
import wave
from pathlib import Path

import numpy as np

from ..errors import InputError, RenderError
from ..files import atomic_dir, atomic_path, check_output
from .master import BLOCK, Master, Piece, fade_factors

PEAK = 0.98  # normalised peak: never clips
MAX_BOOST = 4.0  # quiet music is raised at most this much (+12 dB) towards PEAK
TAIL_S = 2.0  # release + reverb tail kept after the last note when no duration is asked
DRUM_CHANNEL = 9
SYNTH_CORES = max(1, min(2, os.cpu_count() or 1))   # FluidSynth's rendering threads
# Best first: the 38 MB MuseScore General and the 141 MB FluidR3 GM (scripts/setup.sh installs
# one) sound far better than TimGM6mb (6 MB), which stays the fallback pretty_midi ships.
PREFERRED_SOUNDFONTS = ("MuseScore_General.sf3", "MuseScore_General.sf2", "FluidR3_GM.sf2",
                        "FluidR3_GM.sf3", "GeneralUser GS.sf2", "default-GM.sf2", "TimGM6mb.sf2")
_INSTALL_SYNTH = ("the FluidSynth library is missing: install it (Debian/Ubuntu: "
                  "apt-get install libfluidsynth3; macOS: brew install fluid-synth; then "
                  "pip install pyfluidsynth), or write MIDI only with --midi")


def _soundfont_dirs():
    dirs = [Path("/usr/share/sounds/sf3"), Path("/usr/share/sounds/sf2"),
            Path("/usr/share/soundfonts"),
            Path("/usr/local/share/soundfonts")]
    brew = os.environ.get("HOMEBREW_PREFIX")
    dirs += [Path(brew) / "share/soundfonts"] if brew else []
    dirs += [Path("/opt/homebrew/share/soundfonts")]
    spec = importlib.util.find_spec("pretty_midi")  # located, never imported (heavy)
    if spec is not None and spec.origin:
        dirs.append(Path(spec.origin).parent)
    return dirs


def find_soundfont(path=None):
    """Locate a General MIDI SoundFont.

    Order: ``path``, ``$VBGM_SOUNDFONT``, the GM fonts of ``PREFERRED_SOUNDFONTS`` in that
    order wherever they are (system folders, the TimGM6mb.sf2 that pretty_midi ships), then any
    other .sf2/.sf3 in those folders.

    Args:
        path: explicit .sf2/.sf3 file, or None to search.

    Returns:
        Path of an existing SoundFont file.

    Raises:
        RenderError: the given file does not exist, or none was found (names what to install).
    """
    for given, origin in ((path, "SoundFont"), (os.environ.get("VBGM_SOUNDFONT"), "$VBGM_SOUNDFONT")):
        if given:
            if not Path(given).is_file():
                raise RenderError(f"{given}: {origin} file not found")
            return Path(given)
    folders = [f for f in _soundfont_dirs() if f.is_dir()]
    for name in PREFERRED_SOUNDFONTS:
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
    for folder in folders:
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".sf2", ".sf3"))
        if found:
            return found[0]
    raise RenderError("no General MIDI SoundFont found: install one (Debian/Ubuntu: apt-get install "
                      "fluid-soundfont-gm; macOS: brew install fluid-synth and a .sf2), or pass "
                      "--soundfont FILE / set VBGM_SOUNDFONT")


def _new_synth(soundfont, sample_rate):
    """A fresh FluidSynth with ``soundfont`` loaded: (module, synth, sfont id)."""
    try:
        # pyfluidsynth prints where it found the library to stdout when $CI is set: our stdout
        # may carry JSON lines (--progress jsonl) and stderr one-line errors, so it is dropped.
        with contextlib.redirect_stdout(io.StringIO()):
            import fluidsynth
    except (ImportError, OSError) as e:  # no pyfluidsynth, or no libfluidsynth behind it
        raise RenderError(_INSTALL_SYNTH) from e
    # Samples load lazily, per preset used: a fresh synth per render costs ~0.1 s, not ~1 s.
    # Two cores render the voices: the same samples as one (tests/test_stream.py), in ~60 %
    # of the time on an otherwise idle second core.
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate),
                             **{"synth.dynamic-sample-loading": 1,
                                "synth.cpu-cores": SYNTH_CORES})
    sfid = synth.sfload(str(soundfont))
    if sfid < 0:
        synth.delete()
        raise RenderError(f"{soundfont}: FluidSynth cannot load this SoundFont")
    return fluidsynth, synth, sfid


def _synth_blocks(midi, instruments, n_samples, sample_rate, soundfont, block=BLOCK):
    """Raw stereo synthesis of ``instruments`` (miditoolkit Instruments), a block at a time:
    yields ``(start, float32 [m, 2])`` for consecutive blocks of ``block`` samples (the last
    shorter) until ``n_samples``. The samples do not depend on ``block``: the events take
    effect at the same samples, FluidSynth only renders in more calls.

    Each call uses a fresh synth: FluidSynth keeps state across a reset (reverb modulation,
    the phase of its 64-sample blocks, at which events take effect), so reusing one would make
    a render depend on the renders before it.
    """
    fluidsynth, fs, sfid = _new_synth(soundfont, sample_rate)
    try:
        # Float output: no int16 clipping or dither inside FluidSynth; we normalise ourselves.
        write = getattr(getattr(fluidsynth, "_fl", None), "fluid_synth_write_float", None)
        if write is None:
            raise RenderError("this pyfluidsynth does not expose fluid_synth_write_float: "
                              "pip install 'pyfluidsynth>=1.3'")
        write.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_void_p, ctypes.c_int,
                                                             ctypes.c_int] * 2
        seconds = _tick_seconds(midi)

        def sample(tick):
            return int(round(float(seconds(tick)) * sample_rate))

        events = []  # (sample, order, method, args): controls < note-off < note-on
        melodic = (c for c in range(256) if c % 16 != DRUM_CHANNEL)
        drums = iter(range(DRUM_CHANNEL, 256, 16))
        for inst in instruments:
            ch = next(drums if inst.is_drum else melodic, None)
            if ch is None:
                raise RenderError("more than 240 instrument tracks: FluidSynth has 256 channels")
            bank = 128 if inst.is_drum else 0
            # a program the font lacks (e.g. a rare drum kit) falls back to its first one
            program = inst.program if fs.sfpreset_name(sfid, bank, inst.program) else 0
            fs.program_select(ch, sfid, bank, program)
            for c in inst.control_changes:
                events.append((sample(c.time), 1, fs.cc, (ch, c.number, c.value)))
            for b in inst.pitch_bends:
                events.append((sample(b.time), 1, fs.pitch_bend, (ch, b.pitch)))
            for n in inst.notes:
                on = sample(n.start)
                # the off comes after its own on, even for a zero-length note
                events.append((max(sample(n.end), on + 1), 2, fs.noteoff, (ch, n.pitch)))
                events.append((on, 3, fs.noteon, (ch, n.pitch, n.velocity)))
        events.sort(key=lambda e: (e[0], e[1]))
        events.append((n_samples, 9, None, None))
        left = np.zeros(block, np.float32)
        right = np.zeros(block, np.float32)
        pos = first = 0                       # samples rendered; the current block's start
        for at, _, method, args in events:
            at = min(at, n_samples)
            while at > pos:
                end = min(first + block, n_samples)
                upto = min(at, end)
                write(fs.synth, upto - pos, left.ctypes.data, pos - first, 1,
                      right.ctypes.data, pos - first, 1)
                pos = upto
                if pos == end:
                    yield first, np.stack([left[:end - first], right[:end - first]], axis=1)
                    first = pos
            if method is None or pos >= n_samples:
                break
            method(*args)
    finally:
        fs.delete()


def _synthesize(midi, instruments, n_samples, sample_rate, soundfont):
    """Raw stereo float32 [n_samples, 2] of ``instruments`` (the blocks, joined)."""
    out = np.zeros((n_samples, 2), np.float32)
    for start, block in _synth_blocks(midi, instruments, n_samples, sample_rate, soundfont):
        out[start:start + len(block)] = block
    return out


def _tick_seconds(midi):
    """Function: tick (int or array) → seconds, from the MIDI's tempo changes (120 BPM if none)."""
    changes = sorted(midi.tempo_changes, key=lambda c: c.time)
    at_zero = [c.tempo for c in changes if c.time == 0]
    ticks = np.array([0] + [c.time for c in changes if c.time > 0], dtype=np.float64)
    bpm = [at_zero[-1] if at_zero else 120.0] + [c.tempo for c in changes if c.time > 0]
    sec_per_tick = 60.0 / (np.array(bpm, dtype=np.float64) * midi.ticks_per_beat)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * sec_per_tick[:-1])])

    def seconds(tick):
        i = np.searchsorted(ticks, tick, side="right") - 1
        return starts[i] + (tick - ticks[i]) * sec_per_tick[i]

    return seconds


def _length(midi, sample_rate, duration_s):
    if duration_s is not None:
        if duration_s <= 0:
            raise InputError(f"duration {duration_s} s: must be positive")
        return int(round(duration_s * sample_rate))
    ends = [n.end for inst in midi.instruments for n in inst.notes]
    end_s = float(_tick_seconds(midi)(max(ends))) if ends else 0.0
    return int(round((end_s + TAIL_S) * sample_rate))


def _fade(audio, sample_rate, fade_in_s, fade_out_s):
    """Half-cosine fades in place: the first and the last sample are exactly zero."""
    fades = (int(fade_in_s * sample_rate), int(fade_out_s * sample_rate))
    audio *= fade_factors(len(audio), fades, 0, len(audio))[:, None]
    return audio


def _normaliser(peak):
    """Gain that brings ``peak`` to PEAK, boosting at most MAX_BOOST times."""
    return min(PEAK / peak, MAX_BOOST) if peak > 0 else 1.0


def synthesize_piece(midi, sample_rate=44100, soundfont=None, duration_s=None, folder=None):
    """The raw synthesis of ``midi`` written block by block into a ``master.Piece`` (an
    anonymous temporary file); returns ``(piece, peak)``, peak the largest raw magnitude.
    The caller closes the piece."""
    n = _length(midi, sample_rate, duration_s)
    font = find_soundfont(soundfont)
    piece = Piece(n, sample_rate, folder=folder)
    peak = 0.0
    try:
        with contextlib.closing(_synth_blocks(midi, midi.instruments, n, sample_rate,
                                              font)) as blocks:
            for start, block in blocks:
                piece.write(start, block)
                peak = max(peak, float(np.abs(block).max(initial=0.0)))
    except BaseException:
        piece.close()
        raise
    return piece, peak


def render_piece(midi, sample_rate=44100, soundfont=None, duration_s=None, fade_in_s=0.05,
                 fade_out_s=0.1, gain=1.0, loudness=None, folder=None, timings=None,
                 mux_ceiling_db=None):
    """``render_audio`` without the array: the piece synthesized, mastered and solved in a
    ``master.Piece``, ready for its final pass (``Piece.play(sinks)``) to stream it to the
    outputs and measure it. The caller closes it (``with render_piece(...) as piece:``).

    ``timings``: a dict that gets ``synth_s`` and ``master_s`` (wall seconds), ``synth_cpu``
    (the process's CPU seconds when the synthesis ended) and ``master_trials``.
    ``mux_ceiling_db``: also solve the rendition for a copy under this true-peak ceiling
    (``piece.mux``: the same loudness, more headroom for a lossy encoder; else None).
    """
    import resource
    import time

    def cpu():
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + child.ru_utime + child.ru_stime

    t0 = time.perf_counter()
    piece, peak = synthesize_piece(midi, sample_rate, soundfont, duration_s, folder)
    t1, c1 = time.perf_counter(), cpu()
    try:
        scale = _normaliser(peak) * gain
        if loudness is not None:
            m = Master(loudness)
            m.solve(m.process(piece, scale=scale, clip=PEAK))
            if mux_ceiling_db is not None:
                piece.mux = m.solve(piece, mux_ceiling_db)
        else:
            piece.scale, piece.clip = scale, PEAK
        piece.fades = (int(fade_in_s * sample_rate), int(fade_out_s * sample_rate))
    except BaseException:
        piece.close()
        raise
    if timings is not None:
        timings["synth_s"], timings["synth_cpu"] = t1 - t0, c1
        timings["master_trials"] = piece.trials
        timings["master_s"] = time.perf_counter() - t1
    return piece


def render_audio(midi, sample_rate=44100, soundfont=None, duration_s=None, fade_in_s=0.05,
                 fade_out_s=0.1, gain=1.0, loudness=None):
    """Synthesize a MIDI file offline.

    Args:
        midi: miditoolkit.MidiFile; drum tracks (``is_drum``) use the font's drum kits.
        sample_rate: Hz.
        soundfont: .sf2/.sf3 path, or None to search (``find_soundfont``).
        duration_s: exact length in seconds (trimmed, or padded with silence); None = until
            the last note ends plus a ``TAIL_S`` release tail.
        fade_in_s: fade-in length in seconds (prologue).
        fade_out_s: fade-out length in seconds, ending on the last sample (epilogue); short by
            default, a declick: the music's last chord rings out to the end
            (music/articulation.py), it is not faded over.
        gain: extra factor after normalisation (peak-normalised to 0.98, boosted at most x4);
            the result is still clipped at 0.98 whatever the gain.
        loudness: master the mix (``master.Master``: reverb, compression, BS.1770
            loudness to this target in LUFS, true peak <= -1 dBTP); None = peak normalisation
            only.

    Returns:
        float32 array [n, 2] in [-0.98, 0.98], n = round(duration_s * sample_rate) when given.
        (The piece is rendered block by block; only this array is whole. ``render_piece``
        streams it to files instead.)

    Raises:
        InputError: ``duration_s`` not positive.
        RenderError: no synthesizer library, or no usable SoundFont.
    """
    with render_piece(midi, sample_rate, soundfont, duration_s, fade_in_s, fade_out_s, gain,
                      loudness) as piece:
        return piece.array()


def _stem_names(instruments):
    from ..music.instruments import group_of

    names, seen = [], {}
    for inst in instruments:
        base = re.sub(r"[^a-z0-9]+", "_", inst.name.lower()).strip("_")
        base = base or group_of(inst.program, inst.is_drum) or f"program{inst.program}"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def render_stems(midi, out_dir, sample_rate=44100, soundfont=None, duration_s=None,
                 fade_in_s=0.05, fade_out_s=0.1, overwrite=False):
    """Write one WAV per instrument track into a new folder, all the same length.

    All stems share one gain (the one that normalises their sum), so they add up to the mix.
    Streamed: the stems are synthesized block by block side by side twice, first for the
    peak of their sum, then written (FluidSynth is deterministic, so both passes play the same
    samples); memory holds one block per stem.

    Args:
        midi: miditoolkit.MidiFile.
        out_dir: folder to create (written atomically: all stems appear at once or none).
        sample_rate, soundfont, duration_s, fade_in_s, fade_out_s: as in ``render_audio``.
        overwrite: replace ``out_dir`` if it exists.

    Returns:
        dict stem name (track name, e.g. "drums", "piano"; "_2" suffix when repeated) → Path.

    Raises:
        InputError: ``out_dir`` exists and not ``overwrite``; RenderError: as ``render_audio``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: output exists (use --overwrite to replace it)")
    n = _length(midi, sample_rate, duration_s)
    font = find_soundfont(soundfont)
    insts = list(midi.instruments)

    def lockstep():
        gens = [_synth_blocks(midi, [inst], n, sample_rate, font) for inst in insts]
        try:
            yield from zip(*gens)
        finally:
            for g in gens:
                g.close()

    peak = 0.0
    for blocks in lockstep():
        peak = max(peak, float(np.abs(sum(b for _, b in blocks)).max(initial=0.0)))
    scale = np.float32(_normaliser(peak)) if insts else np.float32(1.0)
    fades = (int(fade_in_s * sample_rate), int(fade_out_s * sample_rate))
    paths = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        names = _stem_names(insts)
        writers = [WavWriter(tmp / f"{name}.wav", sample_rate) for name in names]
        try:
            for blocks in lockstep():
                start = blocks[0][0]
                fade = fade_factors(n, fades, start, start + len(blocks[0][1]))[:, None]
                for w, (_, block) in zip(writers, blocks):
                    w(np.clip(block * scale, -PEAK, PEAK) * fade)
        finally:
            for w in writers:
                w.close()
        for name in names:
            paths[name] = out_dir / f"{name}.wav"
    return paths


class WavWriter:
    """A 16-bit PCM WAV written block by block: ``writer(block)`` with float blocks ``[m]`` or
    ``[m, channels]`` in [-1, 1] (clipped), in order; ``close()`` completes the header. Its
    bytes are those ``write_wav`` writes for the whole."""

    def __init__(self, path, sample_rate, channels=2):
        self.path = Path(path)
        self.w = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self.w.setnchannels(channels)
        self.w.setsampwidth(2)
        self.w.setframerate(int(sample_rate))

    def __call__(self, block, start=None):
        block = np.asarray(block, dtype=np.float32)
        block = block[:, None] if block.ndim == 1 else block
        pcm = np.round(np.clip(block, -1.0, 1.0) * 32767).astype("<i2")
        self.w.writeframesraw(pcm.tobytes())

    def close(self):
        if self.w is not None:
            w, self.w = self.w, None
            w.close()


def write_wav(audio, sample_rate, path, overwrite=False):
    """Write float audio ([n] mono or [n, channels], range [-1, 1]) as 16-bit PCM, atomically.

    Raises:
        InputError: ``path`` exists and not ``overwrite``, or its folder is missing/unwritable.
    """
    path = check_output(path, overwrite)
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    with atomic_path(path) as tmp:
        writer = WavWriter(tmp, sample_rate, audio.shape[1])
        try:
            for i in range(0, len(audio), BLOCK):
                writer(audio[i:i + BLOCK])
        finally:
            writer.close()
    return path
