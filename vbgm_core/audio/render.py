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
from .master import master

PEAK = 0.98  # normalised peak: never clips
MAX_BOOST = 4.0  # quiet music is raised at most this much (+12 dB) towards PEAK
TAIL_S = 2.0  # release + reverb tail kept after the last note when no duration is asked
DRUM_CHANNEL = 9
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
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate),
                             **{"synth.dynamic-sample-loading": 1})
    sfid = synth.sfload(str(soundfont))
    if sfid < 0:
        synth.delete()
        raise RenderError(f"{soundfont}: FluidSynth cannot load this SoundFont")
    return fluidsynth, synth, sfid


def _synthesize(midi, instruments, n_samples, sample_rate, soundfont):
    """Raw stereo float32 [n_samples, 2] of ``instruments`` (miditoolkit Instruments).

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
        left = np.zeros(n_samples, np.float32)
        right = np.zeros(n_samples, np.float32)
        pos = 0
        for at, _, method, args in events + [(n_samples, 9, None, None)]:
            at = min(at, n_samples)
            if at > pos:
                write(fs.synth, at - pos, left.ctypes.data, pos, 1, right.ctypes.data, pos, 1)
                pos = at
            if method is None or pos >= n_samples:
                break
            method(*args)
        return np.stack([left, right], axis=1)
    finally:
        fs.delete()


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
    n = len(audio)
    for length, head in ((int(fade_in_s * sample_rate), True), (int(fade_out_s * sample_rate), False)):
        length = min(length, n)
        if length > 0:
            ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))).astype(np.float32)
            if head:
                audio[:length] *= ramp[:, None]
            else:
                audio[n - length:] *= ramp[::-1, None]
    return audio


def _normaliser(peak):
    """Gain that brings ``peak`` to PEAK, boosting at most MAX_BOOST times."""
    return min(PEAK / peak, MAX_BOOST) if peak > 0 else 1.0


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
        loudness: master the mix (``master.master``: reverb, compression, BS.1770
            loudness to this target in LUFS, true peak <= -1 dBTP); None = peak normalisation
            only.

    Returns:
        float32 array [n, 2] in [-0.98, 0.98], n = round(duration_s * sample_rate) when given.

    Raises:
        InputError: ``duration_s`` not positive.
        RenderError: no synthesizer library, or no usable SoundFont.
    """
    n = _length(midi, sample_rate, duration_s)
    audio = _synthesize(midi, midi.instruments, n, sample_rate, find_soundfont(soundfont))
    audio *= _normaliser(float(np.abs(audio).max(initial=0.0))) * gain
    np.clip(audio, -PEAK, PEAK, out=audio)
    if loudness is not None:
        audio = master(audio, sample_rate, loudness)
    return _fade(audio, sample_rate, fade_in_s, fade_out_s)


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
    stems = [_synthesize(midi, [inst], n, sample_rate, font) for inst in midi.instruments]
    scale = _normaliser(float(np.abs(sum(stems)).max(initial=0.0))) if stems else 1.0
    paths = {}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for name, audio in zip(_stem_names(midi.instruments), stems):
            audio = _fade(np.clip(audio * scale, -PEAK, PEAK), sample_rate, fade_in_s, fade_out_s)
            write_wav(audio, sample_rate, tmp / f"{name}.wav")
            paths[name] = out_dir / f"{name}.wav"
    return paths


def write_wav(audio, sample_rate, path, overwrite=False):
    """Write float audio ([n] mono or [n, channels], range [-1, 1]) as 16-bit PCM, atomically.

    Raises:
        InputError: ``path`` exists and not ``overwrite``, or its folder is missing/unwritable.
    """
    path = check_output(path, overwrite)
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return path

