"""Muxing a music track into a copy of a video with ffmpeg."""

import shutil
from pathlib import Path

from ..errors import InputError, RenderError
from ..files import atomic_path, check_output, same_file
from ..media import ffmpeg_executable, media_url, probe, run

# Containers a scored copy of a video can be written to (the extension picks it).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm")


def _keyframe_at(video, t, info):
    """True when the video has a keyframe within half a frame of ``t`` (a stream copy can cut there)."""
    ffprobe = shutil.which("ffprobe")
    if not ffprobe or not info["fps"]:
        return False
    t += info["start"]
    out = run([ffprobe, "-v", "error", "-select_streams", "v:0", "-read_intervals",
                f"{max(t - 2, 0):.3f}%{t + 2:.3f}", "-show_entries", "packet=pts_time,flags",
                "-of", "csv=p=0", media_url(video)], video)
    keys = [float(ln.split(",")[0]) for ln in out.splitlines() if ",K" in ln and ln[0].isdigit()]
    return any(abs(k - t) < 0.5 / info["fps"] for k in keys)


def _mux_command(video, wav, out, mix, start, duration, copy, original_gain, music_gain):
    cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-ss", f"{start:.6f}"] if start else []
    cmd += ["-i", media_url(video), "-i", media_url(wav)]
    # apad + the output's -t make the audio exactly as long as the video, whatever the WAV's length.
    music = f"[1:a]volume={music_gain},apad"
    graph = (f"[0:a]volume={original_gain},apad[o];{music}[m];"
             "[o][m]amix=inputs=2:duration=longest:normalize=0[a]") if mix else f"{music}[a]"
    cmd += ["-filter_complex", graph, "-map", "0:v:0", "-map", "[a]"]
    webm = out.suffix.lower() == ".webm"
    if copy:
        cmd += ["-c:v", "copy"]
    elif webm:
        cmd += ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0"]
    else:
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "libopus", "-b:a", "160k"] if webm else ["-c:a", "aac", "-b:a", "192k"]
    cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-movflags", "+faststart"] if out.suffix.lower() in (".mp4", ".mov", ".m4v") else []
    return cmd + [media_url(out)]


def mux(video, wav, out_path, mode="replace", original_gain=1.0, music_gain=1.0, start_s=None,
        end_s=None, overwrite=False):
    """Write a copy of ``video`` whose audio is ``wav`` (or ``wav`` mixed under its own audio).

    The video stream is copied, not re-encoded, unless the range starts between keyframes or
    the output container refuses the codec. The audio (AAC; Opus for .webm) lasts exactly as
    long as the video or the range: the WAV is cut or padded with silence. Only the first video
    stream and the new audio are kept.

    Args:
        video: source video (never modified).
        wav: the music; it starts at the output's first frame (i.e. at ``start_s``).
        out_path: output file; its extension picks the container.
        mode: "replace" the original audio, or "mix" the music under it (a video without audio
            gets the music alone).
        original_gain, music_gain: linear gains in "mix" mode (music_gain also in "replace").
        start_s, end_s: keep only this range of the video (seconds); None = start / end.
        overwrite: replace an existing ``out_path``.

    Returns:
        ``out_path``.

    Raises:
        InputError: missing input, bad mode or range, output exists or would be the input.
        RenderError: ffmpeg failed (its message), or is missing.
    """
    video, wav, out_path = Path(video), Path(wav), Path(out_path)
    for path, what in ((video, "video"), (wav, "audio")):
        if not path.is_file():
            raise InputError(f"{path}: {what} file not found")
    if mode not in ("replace", "mix"):
        raise InputError(f"mux mode {mode!r}: use 'replace' or 'mix'")
    if same_file(out_path, video) or same_file(out_path, wav):
        raise InputError(f"{out_path}: output would overwrite an input")
    check_output(out_path, overwrite)
    info = probe(video)
    if info["video"] is None:
        raise InputError(f"{video}: no video stream")
    full = info["video"]
    start = float(start_s or 0.0)
    end = full if end_s is None else min(float(end_s), full)
    if start < 0 or end <= start or (end_s is not None and float(end_s) > full + 0.5):
        raise InputError(f"{video}: range {start_s}-{end_s} s is not inside the video (0-{full:.3f} s)")
    copy = start == 0 or _keyframe_at(video, start, info)
    mix = mode == "mix" and info["audio"] is not None
    with atomic_path(out_path) as tmp:
        def encode(copy_video):
            run(_mux_command(video, wav, tmp, mix, start, end - start, copy_video,
                             original_gain, music_gain), f"muxing {wav} into {video}")
        try:
            encode(copy)
        except RenderError:
            if not copy:
                raise
            encode(False)  # the container refused the copied codec: re-encode
    return out_path
