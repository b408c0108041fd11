"""The streamed audio path (issue 26): block-wise measurements equal to the field's references
(pyloudnorm, scipy's resample_poly), blocks that change no sample, the look-ahead limiter under
its true-peak ceiling, loudness targets from -40 to the loud end, a score streamed to its files
without the whole piece in memory, and the muxed file measured after its AAC encode
(issue 23 item 4), real synthesizer and real ffmpeg throughout."""

import json
import subprocess
import wave

import miditoolkit
import numpy as np
import pytest

from vbgm_core.audio import dsp, master, render
from vbgm_core.audio.mix import GainCurve, Mix, mux_music
from vbgm_core.errors import RenderError
from vbgm_core.media import verify_media

SR = 44100


def _song(bpm=120.0, bars=6):
    """Drums, piano chords and a bass line, built here."""
    midi = miditoolkit.MidiFile(ticks_per_beat=480)
    midi.tempo_changes = [miditoolkit.TempoChange(bpm, 0)]
    piano = miditoolkit.Instrument(0, name="piano")
    drums = miditoolkit.Instrument(0, is_drum=True, name="drums")
    bass = miditoolkit.Instrument(33, name="bass")
    for beat in range(4 * bars):
        t = beat * 480
        for pitch in (60, 64, 67):
            piano.notes.append(miditoolkit.Note(60 + beat % 4 * 10, pitch + beat % 3, t, t + 440))
        drums.notes.append(miditoolkit.Note(110, 36 if beat % 2 == 0 else 38, t, t + 60))
        drums.notes.append(miditoolkit.Note(70, 42, t + 240, t + 300))
        bass.notes.append(miditoolkit.Note(90, 36 + beat % 5, t, t + 460))
    midi.instruments = [piano, drums, bass]
    return midi


def _reference(audio, rate=SR):
    """(pyloudnorm's integrated loudness, resample_poly's 4x true peak in dB), float64."""
    import pyloudnorm
    from scipy.signal import resample_poly

    x = np.asarray(audio, np.float64)
    peak = np.abs(resample_poly(x, 4, 1, axis=0)).max()
    return pyloudnorm.Meter(rate).integrated_loudness(x), 20 * np.log10(peak)


def _decoded(path, rate=SR):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "2",
                          "-ar", str(rate), "-f", "f32le", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(out, np.float32).reshape(-1, 2)


@pytest.fixture(scope="module")
def raw():
    return render.render_audio(_song(), SR, duration_s=10.0, loudness=None)


@pytest.fixture(scope="module")
def mastered():
    return render.render_audio(_song(), SR, duration_s=10.0, loudness=-14.0)


# --- measurement ---------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [22050, 44100, 48000])
def test_k_weighting_is_pyloudnorms(rate):
    """pedalboard's shelf and two first-order high-passes = pyloudnorm's K-weighting."""
    import pedalboard as pb
    import pyloudnorm

    x = np.random.default_rng(1).standard_normal(rate * 2) * 0.1
    want = x.copy()
    for stage in pyloudnorm.Meter(rate)._filters.values():
        want = stage.apply_filter(want)
    k = pb.Pedalboard([pb.HighShelfFilter(1500.0, 4.0, 1 / np.sqrt(2)), pb.HighpassFilter(38.0),
                       pb.HighpassFilter(38.0)])
    got = k(x.astype(np.float32)[None], rate)[0]
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("which", ["raw", "mastered"])
def test_block_measurements_match_the_references(which, raw, mastered):
    audio = raw if which == "raw" else mastered
    loud, peak = _reference(audio)
    assert master.integrated_loudness(audio, SR) == pytest.approx(loud, abs=0.01)
    assert master.true_peak_db(audio, SR) == pytest.approx(peak, abs=0.01)
    # the same figures whatever the blocks (carried filter state, 100 ms sums, 20-sample
    # context), one sample at a time excepted
    for size in (777, 4410, 65536):
        meter = master.Meter(SR)
        env = []
        for i in range(0, len(audio), size):
            meter(audio[i:i + size])
        got = meter.result()
        assert got["loudness_lufs"] == pytest.approx(loud, abs=0.01)
        assert got["true_peak_dbtp"] == pytest.approx(peak, abs=0.01)
    # the envelope is the 4x-oversampled magnitude at each sample and the three after it
    tp = dsp.TruePeak()
    env = np.concatenate([tp.push(audio[i:i + 1000]) for i in range(0, len(audio), 1000)]
                         + [tp.finish()])
    from scipy.signal import resample_poly

    up = np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=0)).max(axis=1)
    assert len(env) == len(audio)
    assert np.abs(env - up.reshape(-1, 4).max(axis=1)).max() < 1e-5


def test_short_and_silent_audio():
    assert master.integrated_loudness(np.zeros((SR // 10, 2), np.float32), SR) == -np.inf
    assert master.integrated_loudness(np.zeros((SR, 2), np.float32), SR) == -np.inf
    assert master.true_peak_db(np.zeros((0, 2), np.float32), SR) == -np.inf


# --- synthesis in blocks ----------------------------------------------------------------

def test_blocks_and_cores_change_no_sample(monkeypatch):
    midi, n = _song(bars=2), 4 * SR
    font = render.find_soundfont()
    whole = render._synthesize(midi, midi.instruments, n, SR, font)
    small = np.concatenate([b for _, b in render._synth_blocks(midi, midi.instruments, n, SR,
                                                               font, block=1000)])
    assert np.array_equal(whole, small)
    monkeypatch.setattr(render, "SYNTH_CORES", 1)
    assert np.array_equal(whole, render._synthesize(midi, midi.instruments, n, SR, font))


# --- mastering ---------------------------------------------------------------------------

@pytest.mark.parametrize("target", [-40.0, -23.0, -14.0, -9.0])
def test_targets_under_the_ceiling(target):
    with render.render_piece(_song(), SR, duration_s=10.0, loudness=target) as piece:
        audio = piece.array()
        assert piece.trials <= 4
    loud, peak = _reference(audio)
    assert loud == pytest.approx(target, abs=0.1)
    assert peak <= master.TRUE_PEAK_DBTP
    # quiet targets are music, not silence: -40 LUFS is ~300 LSB of 16-bit RMS
    pcm = np.round(audio * 32767)
    assert np.sqrt(np.mean(pcm ** 2)) > 100


def test_the_loud_end_is_limited_not_clipped():
    """-5 LUFS under -1 dBTP: as loud as the limiter gets it, never over the ceiling."""
    with render.render_piece(_song(), SR, duration_s=10.0, loudness=-5.0) as piece:
        audio = piece.array()
        assert piece.trials == 4
    loud, peak = _reference(audio)
    assert -9.0 < loud < -5.0 and peak <= master.TRUE_PEAK_DBTP


def test_mastering_is_deterministic_and_measures_what_it_plays(mastered):
    with render.render_piece(_song(), SR, duration_s=10.0, loudness=-14.0) as piece:
        seen = []
        measured = piece.play([lambda block, start: seen.append((start, block.copy()))])
    again = np.concatenate([b for _, b in seen])
    assert np.array_equal(again, mastered)
    assert [s for s, _ in seen] == list(range(0, len(mastered), master.BLOCK))
    loud, peak = _reference(mastered)
    assert measured["loudness_lufs"] == pytest.approx(loud, abs=0.01)
    assert measured["true_peak_dbtp"] == pytest.approx(peak, abs=0.01)
    assert measured["clipped_samples"] == 0


def test_the_stream_writes_the_wav_write_wav_writes(tmp_path, mastered):
    whole = render.write_wav(mastered, SR, tmp_path / "whole.wav")
    writer = render.WavWriter(tmp_path / "blocks.wav", SR)
    for i in range(0, len(mastered), 3000):
        writer(mastered[i:i + 3000])
    writer.close()
    assert (tmp_path / "blocks.wav").read_bytes() == whole.read_bytes()


def test_gain_curve_per_block_is_the_whole_curve(mastered):
    curve = GainCurve(((0.0, 0.0), (2.0, 0.0), (2.5, -12.0), (6.0, -12.0), (7.0, 0.0)))
    whole = curve.apply(mastered, SR)
    blocks = np.concatenate([curve.apply_block(mastered[i:i + 5000], i, SR)
                             for i in range(0, len(mastered), 5000)])
    assert np.array_equal(whole, blocks)


# --- the muxed file --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def silent_clip(sample_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips") / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "1", "-i", str(sample_clip), "-an",
                    "-c", "copy", str(out)], check=True)
    return out


def test_aac_overshoot_is_encoded_again_lower(silent_clip, tmp_path):
    """A square wave at -1 dBFS gains ~2 dB of true peak in the AAC encode: measured after
    the encode, it is encoded again that much lower, and lands under the ceiling."""
    n = int(10.56 * SR)
    t = np.arange(n) / SR
    square = np.sign(np.sin(2 * np.pi * 220 * t)) * 10 ** (-1.05 / 20)
    music = np.stack([square, square], 1).astype(np.float32)
    mix = Mix("replace", GainCurve.constant(0.0, n / SR), -10.5)

    def play(sink, trim_db, first):
        for i in range(0, n, 10000):
            sink(music[i:i + 10000] * np.float32(10 ** (trim_db / 20)), i)

    got = mux_music(silent_clip, play, SR, tmp_path / "o.mp4", mix, ceiling_dbtp=-1.0)
    assert got["encodes"] >= 2 and got["trim_db"] < -0.1
    assert got["true_peak_dbtp"] <= -1.0
    _, peak = _reference(_decoded(tmp_path / "o.mp4"))
    assert peak <= -1.0 + 0.01


def test_a_cut_file_is_refused(silent_clip, tmp_path):
    info = verify_media(silent_clip, 10.56, ("video",), fps=25)
    assert info["video"] == pytest.approx(10.56, abs=0.05)
    with pytest.raises(RenderError, match="no audio stream"):
        verify_media(silent_clip, 10.56, ("video", "audio"), fps=25)
    cut = tmp_path / "cut.mp4"
    data = silent_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RenderError):
        verify_media(cut, 10.56, ("video",), fps=25)
    with pytest.raises(RenderError, match="lasts"):
        verify_media(silent_clip, 20.0, ("video",), fps=25)


# --- scoring, streamed -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scorer(tiny_model):
    from vbgm_core.scorer import Scorer

    return Scorer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def rhythm(scorer, sample_clip):
    return scorer.analyze(sample_clip)


def test_a_long_piece_streams_to_its_files(scorer, rhythm, sample_clip, tmp_path, monkeypatch):
    """Past KEEP_AUDIO_S the music goes to its files and is not kept: the WAV is the bytes
    the whole-array path writes, the report's figures are the final pass's, measured once."""
    from vbgm_core import scorer as scorer_module
    from vbgm_core.options import ScoreOptions

    options = ScoreOptions(seed=3)
    monkeypatch.setattr(scorer_module, "KEEP_AUDIO_S", 0.0)
    calls = []
    monkeypatch.setattr(scorer_module.Scorer, "report", _counting(scorer_module.Scorer.report,
                                                                  calls))
    result = scorer.score(sample_clip, out_wav=tmp_path / "m.wav", out_midi=tmp_path / "m.mid",
                          out_video=tmp_path / "m.mp4", rhythm=rhythm, options=options)
    assert result.audio is None and calls == [None]   # the report measured no audio itself
    audio = scorer.render(result.midi, rhythm, options)
    expected = render.write_wav(audio, SR, tmp_path / "expected.wav")
    assert (tmp_path / "m.wav").read_bytes() == expected.read_bytes()
    q = result.report["quality"]
    loud, peak = _reference(audio)
    assert q["loudness_lufs"] == pytest.approx(loud, abs=0.05)
    assert q["true_peak_dbtp"] == pytest.approx(peak, abs=0.05)
    # the muxed file, decoded: within 1 LU of the target, under -1 dBTP after the AAC encode
    muxed_loud, muxed_peak = _reference(_decoded(tmp_path / "m.mp4"))
    assert muxed_loud == pytest.approx(options.loudness, abs=1.0)
    assert muxed_peak <= -1.0 + 0.01
    assert q["muxed_loudness_lufs"] == pytest.approx(muxed_loud, abs=0.05)
    assert q["muxed_true_peak_dbtp"] == pytest.approx(muxed_peak, abs=0.05)
    stages = [s["name"] for s in result.report["timings"]["stages"]]
    assert stages[:1] == ["analyze"] and "play+encode" in stages
    assert json.loads(json.dumps(result.report)) == result.report
    with wave.open(str(tmp_path / "m.wav")) as w:
        assert w.getnframes() == round(rhythm.duration_s * SR)


def _counting(report, calls):
    def counted(self, *args, audio=None, **kwargs):
        calls.append(audio)
        return report(self, *args, audio=audio, **kwargs)
    return counted


def test_short_pieces_and_arrays_keep_their_audio(scorer, rhythm, sample_clip, tmp_path):
    from vbgm_core.options import ScoreOptions

    options = ScoreOptions(seed=3)
    kept = scorer.score(sample_clip, out_wav=tmp_path / "m.wav", rhythm=rhythm, options=options)
    alone = scorer.score(None, rhythm=rhythm, options=options)
    assert kept.audio.shape == (round(rhythm.duration_s * SR), 2)
    assert np.array_equal(kept.audio, alone.audio)
    assert kept.report["quality"]["loudness_lufs"] == \
        pytest.approx(master.integrated_loudness(kept.audio, SR), abs=1e-6)


def test_the_model_loads_while_the_video_is_analysed(tiny_model, sample_clip):
    from vbgm_core.scorer import Scorer, _ModelLoading

    scorer = Scorer.from_pretrained(tiny_model)
    assert isinstance(scorer._model, _ModelLoading) and scorer.genres
    scorer.analyze(sample_clip)
    assert scorer.model.training is False      # loaded: a CMT in eval mode
    assert not isinstance(scorer._model, _ModelLoading)
