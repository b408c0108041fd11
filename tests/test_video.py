"""Video rhythm analysis on synthetic clips with known motion, real clips and bad input."""

import json
import math
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from vbgm_core.errors import InputError
from vbgm_core.video import VideoRhythm, analyze_frames, analyze_video, mapping
from vbgm_core.video.frames import iter_frames

FPS = 25
W, H = 320, 180
SHARED = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def videos():
    path = SHARED / "videos"
    if not path.is_dir():
        pytest.skip(f"shared clips not found at {path} (checkout without ../shared)")
    return path


def _texture(seed, h, w):
    """Blurred noise: trackable texture for optical flow."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(img, (5, 5), 0)


def _write(path, frames, fps=FPS):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _moving_square(xs, size=60, bg_seed=1, fg_seed=2, h=H, w=W):
    """Frames of a textured square at x positions ``xs`` over a flat grey background."""
    square = _texture(fg_seed, size, size)
    out = []
    for x in xs:
        frame = np.full((h, w, 3), 90, np.uint8)
        x = int(round(x))
        frame[60:60 + size, x:x + size] = square
        out.append(frame)
    return out


def test_fast_motion_gives_denser_bars(tmp_path):
    n = 8 * FPS
    slow = _write(tmp_path / "slow.avi", _moving_square([20 + 6 * i / FPS for i in range(n)]))
    fast = _write(tmp_path / "fast.avi", _moving_square(
        [20 + 200 * abs(math.sin(i / FPS)) for i in range(n)]))
    rs, rf = analyze_video(slow, tempo=120), analyze_video(fast, tempo=120)
    assert rs.n_bars == rf.n_bars == 4
    assert max(b.speed for b in rs.bars) < min(b.speed for b in rf.bars)
    assert max(b.density for b in rs.bars) < min(b.density for b in rf.bars)
    # The same holds with percentile matching against a music distribution.
    stats = {"density_hist": np.r_[5, np.ones(16)], "strength_hist": np.r_[0, np.ones(24)]}
    ds = mapping.bar_densities([b.speed for b in rs.bars], stats)
    df = mapping.bar_densities([b.speed for b in rf.bars], stats)
    assert ds.max() < df.min() and ds.min() >= 1


def test_direction_changes_are_visual_beats(tmp_path):
    # The square moves right and left, reversing every 20 frames (0.8 s = 75 BPM) and pausing
    # at frame 130.
    turns = [20, 40, 60, 80, 100, 120]
    xs, x, v = [], 30.0, 6.0
    for i in range(160):
        if i in turns:
            v = -v
        xs.append(x)
        x += v if i < 130 else 0.0
    clip = _write(tmp_path / "turns.avi", _moving_square(xs))
    r = analyze_video(clip)
    beat_frames = [b.time_s * FPS for b in r.visual_beats]
    for k in turns + [130]:
        assert min(abs(f - k) for f in beat_frames) <= 2, (k, beat_frames)
    assert abs(r.tempo_bpm - 75) < 2 or abs(r.tempo_bpm - 150) < 2 or abs(r.tempo_bpm - 112.5) < 2
    for b in r.visual_beats:
        assert b.tick == round(r.tempo_bpm / 60 * b.time_s * 4)
        assert 0 < b.saliency <= 1 and b.strength >= 1


def test_static_clip_has_minimum_density_and_no_beats(tmp_path):
    still = _texture(3, H, W)
    clip = _write(tmp_path / "still.avi", [still] * (4 * FPS))
    r = analyze_video(clip)
    assert r.visual_beats == [] and r.cuts == []
    assert all(b.density == 1 for b in r.bars)  # the lowest density that plays
    assert r.duration_s == pytest.approx(4.0, abs=1e-6)


def test_hard_cut_is_found_at_its_frame(tmp_path):
    # Two shots of different scenes: other texture, other colour cast.
    a = _texture(4, H, W)
    b = np.clip(_texture(5, H, W).astype(int) + [70, 0, -70], 0, 255).astype(np.uint8)
    k = 37
    frames = [np.roll(a, i, axis=1) for i in range(k)] + [np.roll(b, i, axis=1) for i in range(40)]
    r = analyze_video(_write(tmp_path / "cut.avi", frames))
    assert r.cuts == [pytest.approx(k / FPS)]
    cut_beats = [v for v in r.visual_beats if v.cut]
    assert len(cut_beats) == 1 and cut_beats[0].saliency == 1.0


def test_portrait_clip_and_json_round_trip(tmp_path):
    xs = [10 + 2 * i for i in range(50)]
    clip = _write(tmp_path / "portrait.avi", _moving_square(xs, size=40, h=320, w=180))
    r = analyze_video(clip)
    assert r.settings["analysis_size"] == [180, 320]
    out = r.to_json(tmp_path / "rhythm.json")
    data = json.loads(out.read_text())
    for key in ("duration_s", "fps", "tempo_bpm", "n_bars", "bars", "visual_beats", "cuts",
                "motion"):
        assert key in data
    assert set(data["bars"][0]) >= {"start_s", "speed", "density"}
    assert VideoRhythm.from_json(out) == r


def test_analyze_frames_matches_analyze_video(tmp_path):
    xs = [20 + 150 * abs(math.sin(i / 10)) for i in range(60)]
    clip = _write(tmp_path / "m.avi", _moving_square(xs))
    # the frames analyze_video decodes (ffmpeg at the analysis size), handed over as RGB
    frames = [(t, cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for t, f in iter_frames(clip)]
    seen = []
    rf = analyze_frames(iter(frames), 60 / FPS, progress=seen.append)
    rv = analyze_video(clip)
    assert rf.bars == rv.bars and rf.visual_beats == rv.visual_beats
    assert rf.tempo_bpm == rv.tempo_bpm and rf.motion == rv.motion
    assert seen[-1] == 1.0 and all(0 <= s <= 1 for s in seen) and seen == sorted(seen)


def test_bad_input(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="notes.mp4"):
        analyze_video(text)
    with pytest.raises(InputError, match="no such file"):
        analyze_video(tmp_path / "missing.mp4")
    image = tmp_path / "still.png"
    cv2.imwrite(str(image), _texture(6, H, W))
    with pytest.raises(InputError, match="still.png"):
        analyze_video(image)
    clip = _write(tmp_path / "ok.avi", _moving_square(range(0, 50, 2)))
    with pytest.raises(InputError, match="tempo"):
        analyze_video(clip, tempo=5)
    with pytest.raises(InputError, match="end"):
        analyze_video(clip, start=0.5, end=0.2)
    with pytest.raises(InputError, match="past the end"):
        analyze_video(clip, start=60)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")
def test_audio_only_file_is_refused(tmp_path):
    wav = tmp_path / "tone.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=2", str(wav)], check=True)
    with pytest.raises(InputError, match="tone.m4a"):
        analyze_video(wav)


def _ffprobe(path, entries):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          entries, "-of", "json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def _check_grid(r):
    bar_s = 240 / r.tempo_bpm
    assert r.n_bars == math.ceil(r.tempo_bpm * r.duration_s / 240 - 1e-9)
    assert [b.start_s for b in r.bars] == [pytest.approx(k * bar_s) for k in range(r.n_bars)]
    assert r.bars[-1].start_s < r.duration_s <= r.bars[-1].start_s + bar_s + 1e-6


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not on PATH")
def test_car_detection_maps_bars_to_seconds(videos):
    path = videos / "car-detection.mp4"
    r = analyze_video(path)
    assert r.fps == pytest.approx(12.5)
    stream = float(_ffprobe(path, "stream=duration")["streams"][0]["duration"])
    assert abs(r.duration_s - stream) <= 1 / 12.5
    _check_grid(r)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not on PATH")
def test_variable_frame_rate_clip_keeps_container_times(videos, tmp_path):
    # First 50 frames at 25 fps, then every frame lasts 80 ms: 12.5 fps. A 90 kHz time base.
    vfr = tmp_path / "vfr.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(videos / "chaplin.mp4"), "-t", "6",
                    "-vf", "setpts='(if(lt(N,50),N,50+2*(N-50)))/25/TB'", "-fps_mode", "vfr",
                    "-video_track_timescale", "90000", "-an", str(vfr)], check=True)
    probe = _ffprobe(vfr, "frame=pts_time:stream=duration")
    pts = [float(f["pts_time"]) for f in probe["frames"]]
    r = analyze_video(vfr)
    assert [t for t, _ in r.motion] == pytest.approx(pts, abs=1e-3)
    assert abs(r.duration_s - float(probe["streams"][0]["duration"])) <= 0.08 + 1e-6
    _check_grid(r)
    # A trimmed range: times relative to its start, duration exactly the range.
    part = analyze_video(vfr, start=1.0, end=3.0)
    assert part.duration_s == pytest.approx(2.0)
    assert part.motion[0][0] == pytest.approx(0.0, abs=1e-3)
    assert part.motion[-1][0] < 2.0
    _check_grid(part)


def test_real_clips_analyse(videos):
    clips = sorted(p for p in videos.rglob("*") if p.suffix in {".mp4", ".mkv"})
    assert clips
    for clip in clips:
        r = analyze_video(clip, short_side=90)
        assert r.n_bars >= 1 and 70 <= r.tempo_bpm <= 140
        assert all(0 <= b.density <= 16 for b in r.bars)
        _check_grid(r)


def test_same_input_same_result(videos):
    path = videos / "bikes.mp4"
    assert analyze_video(path, end=4) == analyze_video(path, end=4)


def test_music_stats_file_drives_the_mapping(tmp_path):
    from vbgm_core.errors import ModelLoadError

    path = tmp_path / "music_stats.json"
    # Training music where every non-empty bar has density 4 and every beat 3 notes.
    path.write_text(json.dumps({"density_hist": [9] + [0] * 3 + [5] + [0] * 12,
                                "strength_hist": [0, 0, 0, 7] + [0] * 21, "source": "test"}))
    stats = mapping.music_stats(path)
    assert list(mapping.bar_densities([0.02, 0.5, 2.0], stats)) == [4, 4, 4]
    assert list(mapping.beat_strengths([0.0, 0.5, 1.0], stats)) == [3, 3, 3]
    assert list(mapping.bar_densities([0.0, 0.001], stats)) == [1, 1]  # a still clip
    path.write_text(json.dumps({"density_hist": [1, 2]}))
    with pytest.raises(ModelLoadError, match="music_stats.json"):
        mapping.music_stats(path)


def test_a_range_gives_the_same_frames_as_the_whole_file(videos):
    # ffmpeg seeks before the range and the frames before it are dropped by their time
    # stamps: the same frames (times and pixels) as decoding from the start, none missing.
    path = videos / "bikes.mp4"
    whole = [(t, f) for t, f in iter_frames(path) if 2.37 - 1e-6 <= t < 6.1 - 1e-6]
    part = list(iter_frames(path, start=2.37, end=6.1))
    assert [t + 2.37 for t, _ in part] == pytest.approx([t for t, _ in whole], abs=1e-9)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(part, whole))


def test_rotated_clip_is_analysed_upright(tmp_path):
    # 320x180 coded, a display matrix of 90 degrees: played (and analysed) as 180x320.
    import imageio_ffmpeg  # its ffmpeg writes display matrices (-display_rotation, ffmpeg 7+)

    flat = _write(tmp_path / "flat.avi", _moving_square([10 + 3 * i for i in range(30)]))
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90",
                    "-i", str(flat), "-c:v", "mpeg4", "-q:v", "3", str(rotated)], check=True)
    r = analyze_video(rotated)
    assert r.settings["analysis_size"] == [180, 320]
    assert len(r.motion) == 30


def test_without_ffprobe_the_banner_is_enough(tmp_path, monkeypatch):
    # imageio-ffmpeg ships ffmpeg only: size, start and duration then come from ffmpeg -i.
    clip = _write(tmp_path / "m.avi", _moving_square([20 + 4 * i for i in range(40)]))
    with_probe = analyze_video(clip)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "ffprobe"
                        else real_which(name))
    without = analyze_video(clip)
    assert without.motion == with_probe.motion and without.bars == with_probe.bars
    assert without.duration_s == pytest.approx(with_probe.duration_s, abs=1e-6)


def test_decoding_stops_when_the_consumer_does(videos):
    # Leaving the loop early ends ffmpeg and the reader thread (no process or thread left).
    import threading

    before = {t.name for t in threading.enumerate()}
    stream = iter_frames(videos / "talking.mp4")
    for _ in range(3):
        next(stream)
    stream.close()
    assert "vbgm-decode" not in {t.name for t in threading.enumerate()} - before
