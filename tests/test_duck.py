"""The gain curve (ducking under speech), and the mix it makes through the real ffmpeg mux."""

import json
import math
import subprocess

import matplotlib
import numpy as np
import pytest
from conftest import SHARED

from vbgm_core.audio.mix import (
    GainCurve,
    db_to_gain,
    gain_to_db,
    mux_mixed,
    plan_mix,
    plot_gain,
)
from vbgm_core.audio.speech import detect_speech, segments_iou
from vbgm_core.errors import InputError
from vbgm_core.media import ffmpeg_executable
from vbgm_core.options import ScoreOptions

matplotlib.use("Agg")
RATE = 44100


def ducked(speech, duration_s, **options):
    """The mix of music ducked under ``speech`` with these options (the rest: defaults)."""
    return plan_mix(ScoreOptions(mix="duck", **options), duration_s, lambda: speech)


def test_db_helpers():
    assert db_to_gain(-6.0206) == pytest.approx(0.5, abs=1e-4)
    assert gain_to_db(0.5) == pytest.approx(-6.0206, abs=1e-4)
    assert db_to_gain(gain_to_db(0.3)) == pytest.approx(0.3)
    assert gain_to_db(0.0) == -math.inf and db_to_gain(-math.inf) == 0.0
    np.testing.assert_allclose(db_to_gain(np.array([0.0, -20.0])), [1.0, 0.1])
    # the original's default level is the 0.3 the mix used before gains were in dB
    assert db_to_gain(ScoreOptions().original_gain_db) == pytest.approx(0.3, abs=0.003)


def test_curve_ducks_each_segment_with_its_ramps():
    mix = ducked([(2.0, 4.0), (10.0, 12.0)], 15.0, music_gain_db=-3.0)
    curve = mix.music
    np.testing.assert_allclose(curve.points, [
        (0, -3), (1.7, -3), (2, -15), (4, -15), (4.8, -3), (9.7, -3), (10, -15), (12, -15),
        (12.8, -3), (15, -3)])
    g = curve.gains([0.0, 1.7, 1.85, 2.0, 3.0, 4.0, 4.4, 4.8, 7.0, 15.0])
    base, low = db_to_gain(-3.0), db_to_gain(-15.0)
    np.testing.assert_allclose(g, [base, base, (base + low) / 2, low, low, low,
                                   (base + low) / 2, base, base, base])
    fields = mix.report()
    assert fields["speech"] == [{"start_s": 2.0, "end_s": 4.0}, {"start_s": 10.0, "end_s": 12.0}]
    np.testing.assert_allclose(fields["gain_db"], curve.points, atol=0.005)


def test_curve_settings_merging_and_ends():
    # A breath shorter than release + attack keeps the music down; ends are cut at 0 and the
    # duration with the level the ramps have there.
    curve = ducked([(0.1, 3.0), (3.5, 5.0), (9.6, 12.0)], 10.0, duck_depth_db=-20.0,
                   duck_attack_s=1.0, duck_release_s=0.5).music
    assert curve.points[0] == pytest.approx((0.0, gain_to_db(0.9 * 0.1 + 0.1 * 1.0)))
    assert [p[0] for p in curve.points] == pytest.approx([0.0, 0.1, 5.0, 5.5, 8.6, 9.6, 10.0])
    assert [p[1] for p in curve.points[1:3]] == [-20.0, -20.0] and curve.points[-1][1] == -20.0
    # Zero ramps are steps; no speech or no depth is a constant level.
    step = ducked([(1.0, 2.0)], 3.0, duck_attack_s=0.0, duck_release_s=0.0).music
    np.testing.assert_allclose(step.gains([0.999, 1.0, 1.999, 2.0]),
                               [1.0, db_to_gain(-12.0), db_to_gain(-12.0), 1.0])
    assert ducked([], 3.0, music_gain_db=2.0).music.points == ((0.0, 2.0), (3.0, 2.0))
    assert ducked([(1.0, 2.0)], 3.0, duck_depth_db=0.0).music.points == ((0.0, 0.0), (3.0, 0.0))
    # Without ducking, nothing is looked for: the level is the music gain throughout.
    flat = plan_mix(ScoreOptions(mix="mix", music_gain_db=-4.0), 3.0, lambda: 1 / 0)
    assert flat.speech is None and flat.music.points == ((0.0, -4.0), (3.0, -4.0))
    assert flat.keeps_original and not plan_mix(ScoreOptions(), 3.0).keeps_original


def test_apply_scales_each_sample():
    audio = np.ones((3 * RATE, 2), np.float32)
    out = ducked([(1.0, 2.0)], 3.0).music.apply(audio, RATE)
    assert out.dtype == np.float32 and out.shape == audio.shape
    assert out[0, 0] == 1.0 and out[int(1.5 * RATE), 1] == pytest.approx(db_to_gain(-12.0))
    assert out[int(0.85 * RATE), 0] == pytest.approx((1 + db_to_gain(-12.0)) / 2, abs=1e-4)
    assert np.array_equal(audio, np.ones_like(audio))  # the music itself is not changed
    assert GainCurve.constant(-6.0206, 3.0).apply(audio[:, 0], RATE)[5] == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mix="blend"), "mix must be one of replace, mix, duck"),
    (dict(duck_depth_db=6.0), "duck depth 6.0 is outside -60..0"),
    (dict(music_gain_db=math.nan), "must be a finite number"),
    (dict(original_gain_db=1e6), "original gain .* is outside -60..24"),
    (dict(duck_attack_s=-0.1), "duck attack"),
    (dict(duck_release_s=60.0), "duck release"),
])
def test_bad_mix_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        ScoreOptions(**kwargs)


def test_plot_gain_draws_the_speech_and_the_curve(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    fields = ducked([(2.0, 4.0)], 6.0, music_gain_db=-2.0).report()
    line = plot_gain(ax, fields["speech"], fields["gain_db"])
    assert len(ax.patches) == 1  # one shaded speech span
    assert min(line.get_ydata()) == pytest.approx(-14.0) and max(line.get_ydata()) == -2.0
    assert ax.get_xlim() == (0.0, 6.0)
    fig.savefig(tmp_path / "gain.png")
    assert (tmp_path / "gain.png").stat().st_size > 1000


def decode(path):
    raw = subprocess.run([ffmpeg_executable(), "-nostdin", "-loglevel", "error", "-i", str(path), "-vn",
                          "-ac", "2", "-ar", str(RATE), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<f4").reshape(-1, 2)


def rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def test_duck_vs_mix_differs_only_under_speech(tmp_path):
    """Issue 17's test: the same music mixed and ducked into talking.mp4 through ffmpeg."""
    video = SHARED / "videos" / "talking.mp4"
    if not video.is_file():
        pytest.skip(f"needs {video} (the shared data folder is absent)")
    truth = [(s["start_s"], s["end_s"])
             for s in json.loads(video.with_suffix(".json").read_text())["speech"]]
    duration = 20.0
    t = np.arange(int(duration * RATE)) / RATE
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 660.0))
    music = np.stack([chord, chord], 1).astype(np.float32)

    mixes = {mix: plan_mix(ScoreOptions(mix=mix), duration,
                           lambda: detect_speech(video, 0.0, duration)) for mix in ("mix", "duck")}
    segments = mixes["duck"].speech
    assert mixes["mix"].speech is None
    assert mixes["mix"].music.points == ((0.0, 0.0), (duration, 0.0))
    assert segments_iou(segments, truth) >= 0.8, segments
    report = mixes["duck"].report()
    assert json.loads(json.dumps(report)) == report  # plain JSON for the report
    assert min(db for _, db in report["gain_db"]) == -12.0

    outs = {}
    for name, mix in mixes.items():
        outs[name] = mux_mixed(video, music, RATE, tmp_path / f"{name}.mp4", mix)
    a, b = decode(outs["mix"]), decode(outs["duck"])
    n = min(len(a), len(b))
    diff, times = a[:n] - b[:n], np.arange(n) / RATE
    inside = np.zeros(n, bool)
    near = np.zeros(n, bool)  # speech and its ramps, plus an AAC frame or so either side
    for s, e in segments:
        inside |= (times >= s) & (times < e)
        near |= (times >= s - 0.3 - 0.1) & (times < e + 0.8 + 0.1)
    inside_db, outside_db = rms_db(diff[inside]), rms_db(diff[~near])
    assert inside_db >= outside_db + 6.0, (inside_db, outside_db)
    # Measured: the difference under speech is the music at (1 - 10^(-12/20)) ≈ -2.5 dB below
    # itself; outside it is AAC's rounding, about 40 dB under that.
    assert inside_db == pytest.approx(rms_db(music) + gain_to_db(1 - db_to_gain(-12.0)), abs=1.0)
    assert outside_db < rms_db(music) - 30.0
