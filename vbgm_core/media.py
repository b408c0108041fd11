"""ffmpeg and ffprobe: finding them, running them, probing media (durations, frame rate, streams).

Every stage that reads or writes media goes through here: the video analysis decodes frames,
the speech detector decodes sound, the mux writes the scored copy. ffmpeg is the one on PATH,
else the binary imageio-ffmpeg ships; ffprobe is used when present (else ``ffmpeg -i`` is
parsed, which knows only the container's duration).
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import InputError, RenderError


def media_url(path):
    """``path`` as ffmpeg/ffprobe must get it: an absolute ``file:`` URL, so that a name that
    starts with '-' is not read as an option, nor ``concat:a.mp4|b.mp4`` as a protocol."""
    return "file:" + os.path.abspath(path)


def ffmpeg_executable():
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise RenderError("ffmpeg not found: install it (apt-get install ffmpeg / brew install "
                          "ffmpeg) or pip install imageio-ffmpeg") from e


def run(cmd, what):
    """Run an ffmpeg/ffprobe command; a failure becomes a RenderError with its telling line."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        generic = ("Conversion failed!", "Error initializing output stream", "Exiting normally")
        lines = [ln.strip() for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.strip().startswith(generic)]
        name = Path(str(cmd[0])).name
        raise RenderError(f"{what}: {name} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def _seconds(text):
    """'12.5' or '00:01:02.50' → seconds; None when absent or N/A."""
    if not text or text == "N/A":
        return None
    h, m, s = (["0", "0"] + text.split(":"))[-3:]
    return int(h) * 3600 + int(m) * 60 + float(s)


def probe(path):
    """Durations, frame rate and audio presence of a media file (ffprobe, else ``ffmpeg -i``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    ffprobe = shutil.which("ffprobe")
    info = {"duration": None, "video": None, "audio": None, "fps": None, "start": 0.0}
    if ffprobe:
        try:
            out = run([ffprobe, "-v", "error", "-show_entries", "format=duration:stream=codec_type,"
                        "duration,avg_frame_rate,start_time:stream_tags=DURATION", "-of", "json",
                        media_url(path)], path)
        except RenderError as e:  # the file, not the tool, is at fault
            raise InputError(f"{e}") from e
        data = json.loads(out)
        info["duration"] = _seconds(data.get("format", {}).get("duration"))
        for s in data.get("streams", []):
            kind = s.get("codec_type")
            if kind in ("video", "audio") and info[kind] is None:
                info[kind] = (_seconds(s.get("duration")) or _seconds(s.get("tags", {}).get("DURATION"))
                              or info["duration"] or 0.0)
                if kind == "video":
                    num, _, den = s.get("avg_frame_rate", "0/0").partition("/")
                    info["fps"] = float(num) / float(den) if float(den or 0) else None
                    info["start"] = float(s.get("start_time") or 0.0)
    else:  # parse the banner that `ffmpeg -i` prints (it exits 1: no output file)
        out = subprocess.run([ffmpeg_executable(), "-hide_banner", "-i", media_url(path)],
                             capture_output=True, text=True, errors="replace").stderr
        m = re.search(r"Duration: ([\d:.]+)", out)
        info["duration"] = _seconds(m.group(1)) if m else None
        fps = re.search(r"Video:.*?([\d.]+) fps", out)
        info["video"] = info["duration"] if "Video:" in out else None
        info["audio"] = info["duration"] if "Audio:" in out else None
        info["fps"] = float(fps.group(1)) if fps else None
    if info["duration"] is None and info["video"] is None and info["audio"] is None:
        raise InputError(f"{path}: not a media file ffmpeg can read")
    return info


def media_duration(path, stream=None):
    """Duration in seconds of a media file, or of its first ``stream`` ("video" or "audio").

    Raises:
        InputError: missing or unreadable file, or no such stream.
    """
    info = probe(path)
    value = info["duration"] if stream is None else info[stream]
    if value is None:
        raise InputError(f"{path}: no {stream or 'duration'} stream")
    return value


def verify_media(path, duration_s, streams=("video", "audio"), fps=None, tolerance_s=None):
    """Check a media file just written, before it takes its final name: ffprobe (else
    ``ffmpeg -i``) reads it, it holds each of ``streams``, and none is shorter than
    ``duration_s`` by more than ``tolerance_s`` (default: one and a half frames at ``fps``
    plus an audio frame, 50 ms at least) nor longer by more than 0.3 s (an encoder's last
    frames and priming: ffmpeg's ``-t`` lets a few AAC frames past under a mix). A file cut
    short (a full disk: no index, or fewer frames) fails here.

    Raises:
        RenderError: what is wrong, in one line.
    """
    try:
        info = probe(path)
    except InputError as e:
        raise RenderError(f"unreadable ({e})") from None
    tol = tolerance_s if tolerance_s is not None else max(
        0.05, (1.5 / fps if fps else 0.0) + 1024 / 44100)
    for kind in streams:
        got = info.get(kind)
        if got is None:
            raise RenderError(f"no {kind} stream")
        if duration_s - got > tol or got - duration_s > max(tol, 0.3):
            raise RenderError(f"its {kind} lasts {got:.3f} s, not {duration_s:.3f} s")
    return info
