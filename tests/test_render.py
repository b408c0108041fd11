"""Rendering with the real synthesizer and SoundFont, muxing into real clips with real ffmpeg."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from vbgm_core.audio import mux, render
from vbgm_core.errors import InputError, RenderError
from vbgm_core.media import media_duration

SR = 22050


def _song(bpm=120.0, bars=4):
    """Piano chords, a bass line and a kick/snare drum track, built here (no fixture file)."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [miditoolkit.TempoChange(bpm, 0)]
    piano = miditoolkit.Instrument(0, name="Piano")
    drums = miditoolkit.Instrument(0, is_drum=True, name="Drums")
    bass = miditoolkit.Instrument(33, name="")  # unnamed: stem named after its group
    for beat in range(4 * bars):
        t = beat * 480
        for pitch in (60, 64, 67):
            piano.notes.append(miditoolkit.Note(70, pitch + beat % 3, t, t + 440))
        drums.notes.append(miditoolkit.Note(110, 36 if beat % 2 == 0 else 38, t, t + 60))
        bass.notes.append(miditoolkit.Note(90, 36 + beat % 5, t, t + 460))
    midi.instruments = [piano, drums, bass]
    midi.max_tick = 4 * bars * 480
    return midi


@pytest.fixture(scope="module")
def mix():
    return render.render_audio(_song(), sample_rate=SR, duration_s=6.0, loudness=-14.0)


@pytest.fixture(scope="module")
def shared():
    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="module")
def silent_clip(sample_clip, tmp_path_factory):
    """A 10.56 s H.264 clip without audio: the bundled clip played twice, stream-copied."""
    out = tmp_path_factory.mktemp("clips") / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "1", "-i", str(sample_clip), "-an",
                    "-c", "copy", str(out)], check=True)
    return out


SILENT_S = 10.56


def _streams(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,codec_name,duration,avg_frame_rate", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def _decoded_audio(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
                          "-ar", "8000", "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32)


def _video_md5(path):
    """Checksum of the first video stream's compressed packets (equal = stream copied)."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- synthesis ---------------------------------------------------------------------------------

def test_render_exact_length_stereo_not_silent(mix):
    assert mix.dtype == np.float32 and mix.shape == (6 * SR, 2)
    assert np.sqrt(np.mean(mix ** 2)) > 0.02
    assert np.abs(mix).max() <= 0.98


def test_render_fades_reach_zero(mix):
    assert np.abs(mix[0]).max() < 1e-6 and np.abs(mix[-1]).max() < 1e-6
    # the default fade-out is a 0.1 s declick: the music still plays in the last half second
    assert np.sqrt(np.mean(mix[-SR // 2:-SR // 10] ** 2)) > 0.02
    faded = render.render_audio(_song(), sample_rate=SR, duration_s=6.0, fade_out_s=1.0)
    # a 1 s fade-out is shaped: its last 50 ms are much quieter than the music before it
    assert np.abs(faded[-SR // 20:]).max() < 0.2 * np.abs(faded[-2 * SR:-SR]).max()


def test_render_masters_to_the_loudness_target(mix):
    from vbgm_core.metrics.quality import audio_quality

    q = audio_quality(mix, SR)
    assert abs(q["loudness_lufs"] - -14.0) <= 1.0
    assert q["true_peak_dbtp"] <= -1.0 and q["clipped_samples"] == 0
    broadcast = render.render_audio(_song(), sample_rate=SR, duration_s=6.0, loudness=-23)
    assert abs(audio_quality(broadcast, SR)["loudness_lufs"] - -23.0) <= 1.0
    peak_only = render.render_audio(_song(), sample_rate=SR, duration_s=6.0, loudness=None)
    assert abs(np.abs(peak_only).max() - render.PEAK) < 1e-6  # the old peak normalisation


def test_better_soundfont_preferred_over_the_fallback(tmp_path, monkeypatch):
    for name in ("TimGM6mb.sf2", "FluidR3_GM.sf2", "aaa.sf2"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sf3").mkdir()
    (tmp_path / "sf3" / "MuseScore_General.sf3").write_bytes(b"x")
    monkeypatch.delenv("VBGM_SOUNDFONT", raising=False)
    monkeypatch.setattr(render, "_soundfont_dirs", lambda: [tmp_path, tmp_path / "sf3"])
    assert render.find_soundfont().name == "MuseScore_General.sf3"
    (tmp_path / "sf3" / "MuseScore_General.sf3").unlink()
    assert render.find_soundfont().name == "FluidR3_GM.sf2"


def test_render_deterministic(mix):
    again = render.render_audio(_song(), sample_rate=SR, duration_s=6.0, loudness=-14.0)
    assert np.array_equal(mix, again)


def test_render_default_length_follows_tempo():
    # 4 bars at 60 BPM = 16 s of notes, plus the release tail
    audio = render.render_audio(_song(bpm=60.0), sample_rate=SR)
    last_end_s = (15 * 480 + 460) / 480
    assert len(audio) == round((last_end_s + render.TAIL_S) * SR)


def test_tempo_change_moves_onset():
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    # 120 BPM for 2 beats (1 s), then 60 BPM: tick 4*480 is at 1 s + 2 s = 3 s
    midi.tempo_changes = [miditoolkit.TempoChange(120.0, 0), miditoolkit.TempoChange(60.0, 960)]
    inst = miditoolkit.Instrument(0, is_drum=True, name="drums")
    inst.notes.append(miditoolkit.Note(127, 38, 4 * 480, 4 * 480 + 60))
    midi.instruments = [inst]
    audio = render.render_audio(midi, sample_rate=SR, duration_s=4.0, fade_in_s=0, fade_out_s=0)
    onset = np.argmax(np.abs(audio).max(axis=1) > 0.01) / SR
    assert abs(onset - 3.0) < 0.01


def test_zero_length_note_is_released():
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    strings = miditoolkit.Instrument(48, name="strings")  # sustains for as long as the key is held
    strings.notes.append(miditoolkit.Note(100, 60, 0, 0))
    midi.instruments = [strings]
    audio = render.render_audio(midi, sample_rate=SR, duration_s=4.0, fade_out_s=0)
    assert np.abs(audio[3 * SR:]).max() < 0.01 * np.abs(audio).max()


def test_stems_one_per_track_equal_length(tmp_path):
    paths = render.render_stems(_song(), tmp_path / "stems", sample_rate=SR, duration_s=5.0)
    assert sorted(paths) == ["bass", "drums", "piano"]
    signals = {}
    for name, path in paths.items():
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (2, SR, 5 * SR)
            signals[name] = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768
    assert all(np.sqrt(np.mean(s ** 2)) > 0.005 for s in signals.values())  # drums included
    again = render.render_stems(_song(), tmp_path / "again", sample_rate=SR, duration_s=5.0)
    assert all(_sha(again[name]) == _sha(path) for name, path in paths.items())


def _centroid_hz(is_drum, pitch):
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    inst = miditoolkit.Instrument(0, is_drum=is_drum)
    inst.notes.append(miditoolkit.Note(110, pitch, 0, 240))
    midi.instruments = [inst]
    mono = render.render_audio(midi, sample_rate=SR, duration_s=1.0).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono))
    return (spectrum * np.fft.rfftfreq(len(mono), 1 / SR)).sum() / spectrum.sum()


def test_drum_track_plays_the_drum_kit():
    # key 42 is a closed hi-hat on the drum kit, but a low F# on a piano
    assert _centroid_hz(True, 42) > 3000
    assert _centroid_hz(False, 42) < 2000


def test_real_midi_with_tempo_changes_and_controllers(shared):
    path = shared / "data" / "openmsx" / "chuggachugga.mid"  # GPL-2.0, see its COPYRIGHT
    if not path.is_file():
        pytest.skip(f"{path} not found")
    midi = miditoolkit.MidiFile(str(path))
    assert len(midi.tempo_changes) > 1 and any(i.control_changes for i in midi.instruments)
    audio = render.render_audio(midi, sample_rate=SR, duration_s=8.0)
    assert audio.shape == (8 * SR, 2) and np.sqrt(np.mean(audio ** 2)) > 0.02
    assert np.abs(audio).max() <= 0.98


def test_stems_refuse_existing_folder(tmp_path):
    (tmp_path / "stems").mkdir()
    with pytest.raises(InputError, match="exists"):
        render.render_stems(_song(), tmp_path / "stems", sample_rate=SR, duration_s=1.0)


def test_write_wav_roundtrip_and_refuses_existing(tmp_path, mix):
    path = render.write_wav(mix, SR, tmp_path / "a.wav")
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32767
    assert np.abs(data - mix).max() < 1e-4
    with pytest.raises(InputError, match="exists"):
        render.write_wav(mix, SR, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]  # no temporaries left


# --- SoundFont and synthesizer errors ----------------------------------------------------------

def test_missing_soundfont_named(tmp_path):
    missing = tmp_path / "nope.sf2"
    with pytest.raises(RenderError, match="nope.sf2"):
        render.render_audio(_song(), soundfont=missing)


def test_soundfont_env_variable(tmp_path, monkeypatch):
    font = render.find_soundfont()
    monkeypatch.setenv("VBGM_SOUNDFONT", str(font))
    assert render.find_soundfont() == font
    monkeypatch.setenv("VBGM_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(RenderError, match="gone.sf2"):
        render.find_soundfont()


def test_unloadable_soundfont(tmp_path):
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(RenderError, match="bad.sf2"):
        render.render_audio(_song(), sample_rate=SR, soundfont=bad)


def test_no_synth_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # as if it could not be imported
    with pytest.raises(RenderError, match="libfluidsynth3.*--midi"):
        render.render_audio(_song(), sample_rate=SR)


# --- muxing ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def music_wav(tmp_path_factory, mix):
    return render.write_wav(mix, SR, tmp_path_factory.mktemp("wav") / "music.wav")


def _check_av(path, expected_s):
    streams = _streams(path)
    kinds = sorted(s["codec_type"] for s in streams)
    assert kinds == ["audio", "video"]
    v = next(s for s in streams if s["codec_type"] == "video")
    a = next(s for s in streams if s["codec_type"] == "audio")
    num, den = map(float, v["avg_frame_rate"].split("/"))
    frame = den / num
    assert abs(float(v["duration"]) - expected_s) <= frame
    assert abs(float(a["duration"]) - float(v["duration"])) <= frame
    return v, a


def test_mux_replace_copies_video(silent_clip, music_wav, tmp_path):
    src = silent_clip
    before = _sha(src)
    out = mux.mux(src, music_wav, tmp_path / "out.mp4")  # 6 s WAV padded to the 10.56 s clip
    v, a = _check_av(out, media_duration(src, "video"))
    assert v["codec_name"] == "h264" and a["codec_name"] == "aac"
    assert _sha(src) == before
    assert _video_md5(out) == _video_md5(src)
    assert np.sqrt(np.mean(_decoded_audio(out)[: 8000 * 5] ** 2)) > 0.01


def test_mux_mix_keeps_original_audio(sample_clip, tmp_path):
    src = sample_clip
    silent = render.write_wav(np.zeros((SR * 6, 2), np.float32), SR, tmp_path / "silence.wav")
    mixed = mux.mux(src, silent, tmp_path / "mixed.mp4", mode="mix")
    replaced = mux.mux(src, silent, tmp_path / "replaced.mp4", mode="replace")
    _check_av(mixed, media_duration(src, "video"))
    original_rms = np.sqrt(np.mean(_decoded_audio(src) ** 2))
    assert original_rms > 0.01
    assert np.sqrt(np.mean(_decoded_audio(mixed) ** 2)) > 0.5 * original_rms
    assert np.abs(_decoded_audio(replaced)).max() < 1e-3


def test_mux_mix_without_audio_falls_back_to_music(silent_clip, music_wav, tmp_path):
    out = mux.mux(silent_clip, music_wav, tmp_path / "out.mp4", mode="mix")
    _check_av(out, SILENT_S)
    assert np.sqrt(np.mean(_decoded_audio(out)[: 8000 * 5] ** 2)) > 0.01


def test_mux_range(sample_clip, music_wav, tmp_path):
    src = sample_clip
    out = mux.mux(src, music_wav, tmp_path / "cut.mp4", mode="mix", start_s=1.0, end_s=4.0)
    _check_av(out, 3.0)


def test_mux_refuses_existing_output_and_bad_input(silent_clip, music_wav, tmp_path):
    src = silent_clip
    out = tmp_path / "out.mp4"
    out.write_bytes(b"user's file")
    with pytest.raises(InputError, match="exists"):
        mux.mux(src, music_wav, out)
    assert out.read_bytes() == b"user's file"
    mux.mux(src, music_wav, out, overwrite=True)
    _check_av(out, SILENT_S)
    with pytest.raises(InputError, match="overwrite an input"):
        mux.mux(src, music_wav, src, overwrite=True)
    with pytest.raises(InputError, match="range"):
        mux.mux(src, music_wav, tmp_path / "r.mp4", start_s=3.0, end_s=2.0)
    with pytest.raises(InputError, match="mode"):
        mux.mux(src, music_wav, tmp_path / "m.mp4", mode="blend")
    with pytest.raises(InputError, match="no_such.wav"):
        mux.mux(src, tmp_path / "no_such.wav", tmp_path / "m.mp4")


def test_mux_ffmpeg_error_is_render_error_without_partial_output(silent_clip, tmp_path):
    fake = tmp_path / "fake.wav"
    fake.write_text("this is not audio")
    with pytest.raises(RenderError, match="ffmpeg.* failed: .+"):
        mux.mux(silent_clip, fake, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.wav"]


def test_mux_unwritable_folder(silent_clip, music_wav, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # Root ignores the mode bits; the immutable flag holds even for root.
    if os.access(locked, os.W_OK) and subprocess.run(["chattr", "+i", str(locked)],
                                                     capture_output=True).returncode:
        pytest.skip("the folder cannot be made unwritable here (root without chattr support)")
    try:
        with pytest.raises(InputError, match="not writable"):
            mux.mux(silent_clip, music_wav, locked / "out.mp4")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], capture_output=True)


def test_mux_without_ffprobe_or_system_ffmpeg(silent_clip, music_wav, tmp_path, monkeypatch):
    """Without ffprobe, ``ffmpeg -i`` is parsed; without ffmpeg on PATH, imageio-ffmpeg's is used."""
    only_ffmpeg = tmp_path / "bin"
    only_ffmpeg.mkdir()
    (only_ffmpeg / "ffmpeg").symlink_to(shutil.which("ffmpeg"))
    with monkeypatch.context() as m:
        m.setenv("PATH", str(only_ffmpeg))
        assert media_duration(silent_clip) == pytest.approx(SILENT_S)
        no_probe = mux.mux(silent_clip, music_wav, tmp_path / "a.mp4")
        m.setenv("PATH", str(tmp_path / "empty"))
        no_tools = mux.mux(silent_clip, music_wav, tmp_path / "b.mp4", start_s=2.0,
                              end_s=6.0)
    _check_av(no_probe, SILENT_S)
    _check_av(no_tools, 4.0)


def test_not_a_video_is_input_error(music_wav, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video")
    with pytest.raises(InputError, match="clip.mp4"):
        mux.mux(fake, music_wav, tmp_path / "out.mp4")
