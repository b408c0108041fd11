"""Muxing a music track into a copy of a video with ffmpeg: from a WAV file (``mux``) or
streamed into ffmpeg's stdin as it is mastered (``mux_stream``: the AAC encode runs in ffmpeg's
process beside the final pass, on the other core).

Every written file is verified before it takes its final name (``media.verify_media``: ffprobe
reads it, it has its video and audio streams, each as long as asked within a frame or so): an
ffmpeg that stops on a full disk and still exits 0, leaving a file cut short without its index,
is an error, never "wrote". ``mux_stream`` also decodes the muxed audio and measures it
(loudness, true peak after the AAC encode): where the encode's overshoot takes the true peak
over the ceiling, the music is encoded again that much lower.
"""

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError, RenderError
from ..files import atomic_path, check_output, same_file
from ..media import ffmpeg_executable, media_url, probe, run, verify_media

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


def _mux_command(video, wav, out, mix, start, duration, copy, original_gain, music_gain,
                 raw_rate=None):
    """ffmpeg's command line; ``raw_rate``: the music comes as float32 stereo on stdin."""
    cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-ss", f"{start:.6f}"] if start else []
    cmd += ["-i", media_url(video)]
    if raw_rate is not None:
        cmd += ["-thread_queue_size", "1024", "-f", "f32le", "-ar", str(int(raw_rate)), "-ac",
                "2", "-i", "pipe:0"]
    else:
        cmd += ["-i", media_url(wav)]
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
    # AAC's "fast" coder: half the CPU of the default two-loop search (1.1 vs 2.1 s for 2
    # minutes), the same loudness and true peak within 0.05 (docs/PERFORMANCE.md) at 192k
    cmd += ["-c:a", "libopus", "-b:a", "160k"] if webm else ["-c:a", "aac", "-aac_coder", "fast",
                                                             "-b:a", "192k"]
    cmd += ["-t", f"{duration:.6f}"]
    cmd += ["-movflags", "+faststart"] if out.suffix.lower() in (".mp4", ".mov", ".m4v") else []
    return cmd + [media_url(out)]


def _check_mux_inputs(video, out_path, wav=None, overwrite=False, mode="replace"):
    video, out_path = Path(video), Path(out_path)
    for path, what in ((video, "video"), *(((Path(wav), "audio"),) if wav is not None else ())):
        if not path.is_file():
            raise InputError(f"{path}: {what} file not found")
    if mode not in ("replace", "mix"):
        raise InputError(f"mux mode {mode!r}: use 'replace' or 'mix'")
    if same_file(out_path, video) or (wav is not None and same_file(out_path, wav)):
        raise InputError(f"{out_path}: output would overwrite an input")
    check_output(out_path, overwrite)


def _range(video, info, start_s, end_s):
    """(start, end) of the scored range of the video, checked."""
    if info["video"] is None:
        raise InputError(f"{video}: no video stream")
    full = info["video"]
    start = float(start_s or 0.0)
    end = full if end_s is None else min(float(end_s), full)
    if start < 0 or end <= start or (end_s is not None and float(end_s) > full + 0.5):
        raise InputError(f"{video}: range {start_s}-{end_s} s is not inside the video (0-{full:.3f} s)")
    return start, end


def _space_left(folder):
    try:
        st = os.statvfs(folder)
        return st.f_bavail * st.f_frsize
    except OSError:
        return None


def _write_failure(out_path, tmp, message):
    """The error for a written file that is not what it should be: a full disk is the
    place's, an OSError(ENOSPC) naming ``out_path`` (``files.Outputs`` turns it into one line
    naming the user's output, exit 2, and removes every temporary); else ffmpeg's
    (RenderError, exit 4)."""
    left = _space_left(tmp.parent)
    if "No space left" in message or (left is not None and left < 1 << 20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_path))
    return RenderError(f"{out_path}: {message}")


def _verify(out_path, tmp, duration, fps, audio=True):
    try:
        verify_media(tmp, duration, ("video", "audio") if audio else ("video",), fps=fps)
    except RenderError as e:
        raise _write_failure(out_path, tmp, f"the written file is damaged ({e})") from None


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
        OSError: ENOSPC, the disk filled up (nothing written).
        RenderError: ffmpeg failed (its message), or is missing, or wrote a file that is
            not what was asked (checked with ffprobe before it takes its name).
    """
    video, wav, out_path = Path(video), Path(wav), Path(out_path)
    _check_mux_inputs(video, out_path, wav, overwrite, mode)
    info = probe(video)
    start, end = _range(video, info, start_s, end_s)
    copy = start == 0 or _keyframe_at(video, start, info)
    mix = mode == "mix" and info["audio"] is not None
    with atomic_path(out_path) as tmp:
        def encode(copy_video):
            try:
                run(_mux_command(video, wav, tmp, mix, start, end - start, copy_video,
                                 original_gain, music_gain), f"muxing {wav} into {video}")
            except RenderError as e:
                if "No space left" in str(e):
                    raise _write_failure(out_path, tmp, str(e)) from None
                raise
        try:
            encode(copy)
        except RenderError:
            if not copy:
                raise
            encode(False)  # the container refused the copied codec: re-encode
        _verify(out_path, tmp, end - start, info["fps"])
    return out_path


# Codecs each container takes as they are (a stream copy); others are tried first.
_COPYABLE = {".mp4": {"h264", "hevc", "mpeg4", "av1", "vp9"}, ".m4v": {"h264", "hevc", "mpeg4"},
             ".mov": {"h264", "hevc", "mpeg4", "prores", "mjpeg"}, ".webm": {"vp8", "vp9", "av1"}}


def _copy_accepted(video, out_path):
    """Whether ``out_path``'s container takes ``video``'s first video stream copied."""
    suffix = out_path.suffix.lower()
    if suffix == ".mkv":
        return True
    ffprobe = shutil.which("ffprobe")
    codec = ""
    if ffprobe:
        try:
            codec = run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries",
                         "stream=codec_name", "-of", "csv=p=0", media_url(video)], video).strip()
        except RenderError:
            codec = ""
    if codec in _COPYABLE.get(suffix, ()):
        return True
    # Unknown: a 0.1 s trial of the copy into the same container says.
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / f"trial{suffix}"
        cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
               "-i", media_url(video), "-map", "0:v:0", "-c:v", "copy", "-t", "0.1",
               media_url(trial)]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


class _FfmpegGone(Exception):
    """ffmpeg closed its stdin: the pass stops; its exit status says why."""


class _Ffmpeg:
    """An ffmpeg process reading the music as float32 stereo from its stdin."""

    def __init__(self, cmd):
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish()
        self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.broken = False

    def __call__(self, block, start=None):
        if self.broken:
            return
        data = np.ascontiguousarray(block, dtype="<f4")
        try:
            self.proc.stdin.write(memoryview(data).cast("B"))
        except (BrokenPipeError, ValueError):
            self.broken = True          # ffmpeg stopped: its exit status says why
            raise _FfmpegGone() from None

    def finish(self, what):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        code = self.proc.wait()
        self.stderr.seek(0)
        text = self.stderr.read().decode("utf-8", "replace")
        self.stderr.close()
        if code != 0 or self.broken:
            lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip()
                     .startswith(("Conversion failed!", "Error initializing output stream"))]
            raise RenderError(f"{what}: ffmpeg failed: "
                              f"{lines[-1] if lines else f'exit {code}'}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()


def measure_audio(path, sample_rate, channels=2):
    """The loudness, true peak and length (samples) of a media file's first audio stream,
    decoded by ffmpeg into a pipe and measured block by block (``master.Meter``)."""
    from .master import BLOCK, Meter

    cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
           media_url(path), "-map", "0:a:0", "-f", "f32le", "-ac", str(channels), "-ar",
           str(int(sample_rate)), "pipe:1"]
    meter = Meter(sample_rate, channels)
    frame = 4 * channels
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        rest = b""
        while True:
            data = proc.stdout.read(BLOCK * frame)
            if not data:
                break
            data = rest + data
            cut = len(data) - len(data) % frame
            rest = data[cut:]
            if cut:
                meter(np.frombuffer(data[:cut], "<f4").reshape(-1, channels))
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        if proc.wait() != 0:
            raise RenderError(f"{path}: cannot decode its audio: "
                              f"{err.splitlines()[-1] if err else 'ffmpeg failed'}")
    result = meter.result()
    result["samples"] = meter.samples
    return result


def mux_stream(video, play, sample_rate, out_path, mode="replace", original_gain=1.0,
               start_s=None, end_s=None, overwrite=False, ceiling_dbtp=None):
    """``mux``, with the music streamed into ffmpeg's stdin instead of read from a WAV.

    Args:
        play: ``play(sink, trim_db, first)``: calls ``sink(block, start)`` with the music's
            consecutive float32 ``[m, 2]`` blocks at ``sample_rate`` (0 dB at ``trim_db=0``;
            ``trim_db`` lowers it). ``first`` is True on the first call only (the caller may
            feed its other outputs in the same pass then). Called again only to encode the
            music lower (below).
        ceiling_dbtp: after the encode the muxed audio is decoded and measured; with a
            ceiling, a true peak over it (the AAC encoder's overshoot) makes the music
            encoded again, lower by the excess plus 0.05 dB (at most twice, and only while
            that lowers the peak: under a mix the clip's own sound may hold it).
        Others: as in ``mux``.

    Returns:
        ``{"loudness_lufs", "true_peak_dbtp", "clipped_samples", "samples", "trim_db",
        "encodes"}``: the muxed audio as decoded (after the AAC encode), the music's trim.

    Raises:
        InputError: as ``mux``.
        OSError: ENOSPC, the disk filled up (nothing written; ``files.Outputs`` makes it
            one line).
        RenderError: ffmpeg failed, or wrote a file that is not what was asked.
    """
    video, out_path = Path(video), Path(out_path)
    _check_mux_inputs(video, out_path, None, overwrite, mode)
    info = probe(video)
    start, end = _range(video, info, start_s, end_s)
    copy = (start == 0 or _keyframe_at(video, start, info)) and _copy_accepted(video, out_path)
    mix = mode == "mix" and info["audio"] is not None
    cmd_args = (video, None, None, mix, start, end - start, copy, original_gain, 1.0)
    trim, encodes, previous, step = 0.0, 0, None, 0.0
    with atomic_path(out_path) as tmp:
        while True:
            ffmpeg = _Ffmpeg(_mux_command(*cmd_args[:2], tmp, *cmd_args[3:],
                                          raw_rate=sample_rate))
            try:
                try:
                    play(ffmpeg, trim, encodes == 0)
                except _FfmpegGone:
                    pass
                ffmpeg.finish(f"muxing the music into {video}")
            except RenderError as e:
                if "No space left" in str(e):
                    raise _write_failure(out_path, tmp, str(e)) from None
                raise
            finally:
                ffmpeg.kill()
            encodes += 1
            _verify(out_path, tmp, end - start, info["fps"])
            measured = measure_audio(tmp, sample_rate)
            lasts = measured["samples"] / sample_rate - (end - start)
            if lasts < -0.1 or lasts > 0.3:     # cut short (or not what was asked)
                raise _write_failure(out_path, tmp, "the written file is damaged (its audio "
                                     f"lasts {measured['samples'] / sample_rate:.3f} s, not "
                                     f"{end - start:.3f} s)")
            over = (measured["true_peak_dbtp"] - ceiling_dbtp) if ceiling_dbtp is not None \
                else 0.0
            # (under a mix, the clip's own sound may hold the peak: lowering the music stops
            # once it no longer lowers the peak by half its step)
            helped = encodes == 1 or previous - measured["true_peak_dbtp"] >= step / 2
            if over <= 0 or encodes > 2 or not helped:
                break
            previous, step = measured["true_peak_dbtp"], over + 0.05
            trim -= step
    measured.update(trim_db=round(trim, 3), encodes=encodes)
    return measured
