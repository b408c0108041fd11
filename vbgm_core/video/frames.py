"""Streaming video frames with container time stamps, decoded at the small analysis resolution.

ffmpeg decodes (threaded), scales to the analysis size with the area filter and converts to
BGR before a frame reaches Python: frames arrive from a raw-video pipe, ``w * h * 3`` bytes
each, read straight into numpy. Each frame carries its presentation time from the container
(the ``showinfo`` filter's ``pts`` on ffmpeg's stderr, times the stream's time base, ``-copyts``
and ``-fps_mode passthrough``), never ``index / fps``: variable-frame-rate clips and clips with
absurd fps metadata (``r_frame_rate=90000/1``) still map frames to the right seconds. A thread
reads the pipe into a bounded queue so that ffmpeg's decoding overlaps with the optical flow on
the caller's side. ffmpeg's log never reaches the user: an unreadable file becomes one
``InputError`` line.
"""

import json
import math
import queue
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, RenderError
from ..media import ffmpeg_executable, media_duration, media_url

# Analysis resolution: short side in pixels (METHOD.md uses 360; 180 is 4x cheaper and the flow
# is normalised by the short side, so speeds do not depend on this choice).
DEFAULT_SHORT_SIDE = 180
# A frame rate outside this range in the metadata is not believed (seen: 90000/1).
_PLAUSIBLE_FPS = (1.0, 240.0)
# ffmpeg seeks (``-ss`` before ``-i``, accurate) to this much before ``start``; the frames before
# ``start`` are then dropped here, by their exact time stamps.
_SEEK_MARGIN_S = 0.1
# swscale flags of the one scale + BGR conversion pass (area: the average of the covered pixels)
_SCALE_FLAGS = "area"
# Frames decoded ahead of the analysis (memory: a few hundred KiB each at the analysis size).
_QUEUE_FRAMES = 32
# Options that keep every decoded frame with its own time stamp (-vsync before ffmpeg 5.1).
_PASSTHROUGH = (("-fps_mode", "passthrough"), ("-vsync", "passthrough"))

_SHOWINFO = re.compile(rb"\] n:\s*\d+ pts:\s*(\S+) pts_time:(\S+).*? s:(\d+)x(\d+) ")
_TIME_BASE = re.compile(rb"config in time_base: (\d+)/(\d+)")


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe (else ffmpeg's banner) says about a file's first video stream.

    Attributes:
        width, height: coded frame size in pixels.
        fps_meta: the container's frame rate; may be absurd, used only as a fallback.
        duration_s: the duration of record (``mux.media_duration``), or None.
        start_s: the stream's start time; frame times are counted from it.
        start_pts: the same in the stream's time base (exact), or None.
    """

    width: int
    height: int
    fps_meta: float
    duration_s: float | None
    start_s: float = 0.0
    start_pts: int | None = None


def analysis_size(width, height, short_side=DEFAULT_SHORT_SIDE):
    """Frame size ``(w, h)`` with the short side scaled to ``short_side`` (never upscaled).

    Both sides are even, so portrait and landscape clips keep their aspect ratio.
    """
    scale = min(1.0, short_side / min(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _container_duration(path):
    """The duration of record: the video stream's (else the container's) duration as ffprobe
    reads it (``mux.media_duration``), or None when it cannot tell. The mux cuts the scored
    copy to it, so the music is made exactly this long (the last frame's time + a guessed frame
    step is not: few, irregular frames make that guess long)."""
    try:
        value = media_duration(path, "video")
    except InputError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def frame_rate(text):
    """An ffprobe rate ("30000/1001", "25/1", "0/0") as frames per second; 0.0 when unknown."""
    num, _, den = (text or "0/0").partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def _unreadable(path, detail=""):
    return InputError(f"{path}: not a readable video (unknown format, unsupported codec, "
                      f"or no video stream){': ' + detail if detail else ''}")


def _stream_facts(path):
    """``(width, height, fps, start_s, start_pts)`` of the first video stream (not a cover
    picture): ffprobe, else the banner of ``ffmpeg -i``."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        proc = subprocess.run([ffprobe, "-v", "error", "-select_streams", "V:0", "-show_entries",
                               "stream=width,height,r_frame_rate,avg_frame_rate,start_pts,"
                               "start_time", "-of", "json", media_url(path)],
                              capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            raise _unreadable(path, lines[-1].strip() if lines else "")
        streams = json.loads(proc.stdout or "{}").get("streams") or [{}]
        s = streams[0]
        fps = frame_rate(s.get("r_frame_rate")) or frame_rate(s.get("avg_frame_rate"))
        start_pts = s.get("start_pts")
        try:
            start_s = float(s.get("start_time"))
        except (TypeError, ValueError):
            start_s, start_pts = 0.0, None
        return int(s.get("width") or 0), int(s.get("height") or 0), fps, start_s, \
            None if start_pts is None else int(start_pts)
    banner = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", media_url(path)],
                            capture_output=True, text=True, errors="replace").stderr
    video = [ln for ln in banner.splitlines()
             if re.search(r"Stream #.*: Video:", ln) and "attached pic" not in ln]
    if not video:
        if "Input #0" not in banner:
            raise _unreadable(path, banner.strip().splitlines()[-1] if banner.strip() else "")
        return 0, 0, 0.0, 0.0, None
    size = re.search(r", (\d+)x(\d+)", video[0])
    fps = re.search(r", ([\d.]+) fps", video[0])
    start = re.search(r"start: (-?[\d.]+)", banner)
    return (int(size.group(1)) if size else 0, int(size.group(2)) if size else 0,
            float(fps.group(1)) if fps else 0.0, float(start.group(1)) if start else 0.0, None)


def probe(path):
    """Read a video's size, frame-rate metadata, start and expected duration without decoding.

    Raises:
        InputError: missing file, or a file ffmpeg cannot read as video.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        width, height, fps, start_s, start_pts = _stream_facts(path)
    except (RenderError, json.JSONDecodeError) as e:
        raise _unreadable(path, str(e)) from e
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: no video stream (audio-only or empty file?)")
    return VideoInfo(width, height, fps, _container_duration(path), start_s, start_pts)


def _command(path, info, size, start, passthrough):
    """ffmpeg reading the first video stream from ``start`` (s) as BGR frames of ``size`` on
    stdout, one showinfo line per frame on stderr. The target size is swapped when the frames
    come out rotated (ffmpeg applies a rotation in the metadata, as players do)."""
    w, h = size
    scale = (f"scale=w='if(eq(iw,{info.width}),{w},{h})':h='if(eq(iw,{info.width}),{h},{w})'"
             f":flags={_SCALE_FLAGS}")
    cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-copyts"]
    if start > _SEEK_MARGIN_S:
        # -ss counts from the file's start (<= the stream's): this lands at or before the frame
        cmd += ["-ss", f"{start - _SEEK_MARGIN_S:.6f}"]
    return cmd + ["-i", media_url(path), "-map", "0:V:0", "-an", "-sn", "-dn",
                  "-vf", f"{scale},format=bgr24,showinfo=checksum=0", *passthrough,
                  "-f", "rawvideo", "pipe:1"]


class _Decoder:
    """ffmpeg in a child process and a thread that puts ``(t, frame)`` on ``out``, then
    ``None`` (or an exception)."""

    def __init__(self, path, info, size, start, end):
        self.path, self.info, self.size, self.start, self.end = path, info, size, start, end
        self.out = queue.Queue(maxsize=_QUEUE_FRAMES)  # bounded: never far ahead of analysis
        self.stop = threading.Event()
        self.proc = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True, name="vbgm-decode")
        self.thread.start()

    def _spawn(self, passthrough):
        with self.lock:
            if self.stop.is_set():
                return None
            self.proc = subprocess.Popen(
                _command(self.path, self.info, self.size, self.start, passthrough),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return self.proc

    def kill(self):
        with self.lock:
            self.stop.set()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()

    def _run(self):
        try:
            for passthrough in _PASSTHROUGH:
                proc = self._spawn(passthrough)
                if proc is None:
                    break
                try:
                    count, log, finished = self._pump(proc)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    rc = proc.wait()
                    proc.stdout.close()
                    proc.stderr.close()
                if self.stop.is_set() or finished or count or rc == 0:
                    break
                if not any(b"Unrecognized option 'fps_mode'" in ln for ln in log):
                    detail = log[-1].decode("utf-8", "replace").strip() if log else f"exit {rc}"
                    raise _unreadable(self.path, re.sub(r"^\[[^]]*\] ", "", detail))
            self.out.put(None)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self.out.put(e)

    def _pump(self, proc):
        """Read one showinfo line, then that frame's bytes, until EOF, ``end`` or a stop.
        Returns (frames put on the queue, ffmpeg's last other log lines, whether ``end`` was
        reached)."""
        start, end = self.start, self.end
        zero_pts, zero_s = self.info.start_pts, self.info.start_s
        tb_num = tb_den = None
        prev_t, count, log = -math.inf, 0, deque(maxlen=8)
        stdout = proc.stdout
        for line in proc.stderr:
            if self.stop.is_set():
                break
            m = _SHOWINFO.search(line)
            if m is None:
                tb = _TIME_BASE.search(line)
                if tb:
                    tb_num, tb_den = int(tb.group(1)), int(tb.group(2))
                elif line.strip() and b"Parsed_showinfo" not in line:
                    log.append(line)
                continue
            w, h = int(m.group(3)), int(m.group(4))
            frame = np.empty((h, w, 3), np.uint8)
            view, got = memoryview(frame).cast("B"), 0
            while got < len(view):
                n = stdout.readinto(view[got:])
                if not n:
                    return count, log, False  # ffmpeg ended (or was stopped) mid-frame
                got += n
            pts = m.group(1)
            if pts == b"NOPTS":
                continue
            if tb_den and zero_pts is not None:  # exact: integer pts times the time base
                t = (int(pts) - zero_pts) * tb_num / tb_den
            elif tb_den:
                t = int(pts) * tb_num / tb_den - zero_s
            else:
                t = float(m.group(2)) - zero_s
            if t <= prev_t:  # a repeated or broken time stamp: drop the frame
                continue
            prev_t = t
            if t < start - 1e-6:
                continue
            if end is not None and t >= end - 1e-6:
                return count, log, True
            self.out.put((t - start, frame))
            count += 1
        return count, log, False


def iter_frames(path, short_side=DEFAULT_SHORT_SIDE, start=None, end=None, info=None):
    """Yield ``(time_s, frame)`` for the frames of ``path`` in ``[start, end)``.

    Args:
        path: video file.
        short_side: analysis resolution (short side in pixels; never upscaled).
        start, end: range in seconds of the source; times yielded are relative to ``start``.
        info: ``probe(path)``, when the caller has it already.

    Yields:
        ``(t, frame)``: ``t`` in seconds from ``start`` (container time stamps, strictly
        increasing), ``frame`` a ``(h, w, 3)`` uint8 BGR array at analysis size.

    Raises:
        InputError: unreadable file, or a range without two frames.
    """
    info = probe(path) if info is None else info
    size = analysis_size(info.width, info.height, short_side)
    decoder = _Decoder(path, info, size, float(start or 0.0), end)
    count = 0
    try:
        while True:
            item = decoder.out.get()
            if item is None:
                if count < 2 and (start or end is not None):  # the range, not the file
                    until = "the end" if end is None else f"{end:g} s"
                    raise InputError(f"{path}: the range {start or 0:g}-{until} holds {count} "
                                     "frame(s); give a range of at least two frames")
                return
            if isinstance(item, BaseException):
                raise item
            count += 1
            yield item
    finally:
        decoder.kill()
        while decoder.thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                decoder.out.get(timeout=0.05)
            except queue.Empty:
                pass
        decoder.thread.join()


def frame_duration(times, fps_meta=0.0):
    """Typical frame interval in seconds: median of the time-stamp steps (metadata as fallback)."""
    if len(times) >= 2:
        step = float(np.median(np.diff(times)))
        if step > 0:
            return step
    if _PLAUSIBLE_FPS[0] <= fps_meta <= _PLAUSIBLE_FPS[1]:
        return 1.0 / fps_meta
    return 1.0 / 25.0
