"""A timeline's media on this machine: where each clip's file is, and where its picture starts.

A timeline names its media as the editor's machine saw them (``file://localhost/D%3a/media/
a.mov``, ``S:\\path\\a.exr``, an EDL's bare clip name). A file that is not where the timeline
says is looked up by name in the folders the user gives (relinking, as an editor does). A clip's
source times are on the media's timecode clock (a clip from 01:00:03:23 of a file that starts at
01:00:00:00 begins 3:23 into it): ffprobe reads the file's start timecode.
"""

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlsplit

from ..errors import InputError, RenderError
from ..media import media_url, run
from ..video.frames import frame_rate

# A file name extension, as opposed to the end of a name that holds a dot ("tech.fux (loop)").
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}")
_DRIVE = re.compile(r"^/?[A-Za-z]:[\\/]")
_TIMECODE = re.compile(r"(\d+):(\d\d):(\d\d)([:;.])(\d\d)")
# ffprobe's rate of an NTSC stream is exact (24000/1001); a user may type 23.976: snap to it.
_NTSC_RATES = tuple(n * 1000 / 1001 for n in (24, 30, 48, 60))


def snap_rate(rate):
    """``rate`` (frames per second), an NTSC rate given to 3 decimals made exact."""
    return next((r for r in _NTSC_RATES if abs(rate - r) < 0.005), rate)


def reference_path(url, base_dir=None):
    """The file a media reference names: a ``Path`` on this machine, or a ``PureWindowsPath`` for
    a Windows path (only its name can be used here).

    Args:
        url: ``file:`` URL, absolute or relative path (Windows spellings included).
        base_dir: folder that relative paths are relative to (the timeline file's).
    """
    text = url
    if url.lower().startswith("file:"):
        parts = urlsplit(url)
        text = unquote(parts.path)
        if parts.netloc not in ("", "localhost"):
            text = f"//{parts.netloc}{text}"  # a network share
    if _DRIVE.match(text) or "\\" in text:
        windows = PureWindowsPath(text.lstrip("/") if _DRIVE.match(text) else text)
        return Path(windows) if os.name == "nt" else windows
    path = Path(text)
    return path if path.is_absolute() or base_dir is None else Path(base_dir) / path


def has_extension(name):
    """Whether a media name ends in a file extension."""
    return bool(_EXTENSION.fullmatch(PurePosixPath(name).suffix))


class MediaFinder:
    """Finds a clip's file: where the timeline says, else by name in the user's folders.

    Names match case-insensitively (the timeline may come from a case-insensitive disk). A
    ``loose`` name (an EDL's clip name, or a name without an extension) also matches any file
    with the same name and another extension (``shot_a`` or ``shot_a.exr`` → ``shot_a.mov``);
    among several, the first in sorted order.
    """

    def __init__(self, media_dirs=()):
        self.media_dirs = [Path(d).expanduser() for d in media_dirs]
        for folder in self.media_dirs:
            if not folder.is_dir():
                raise InputError(f"{folder}: no such media folder")
        self._listings = {}

    def _files(self, folder):
        """``[(lower-case name, path)]`` of the regular files in ``folder``, sorted."""
        if folder not in self._listings:
            with os.scandir(folder) as entries:
                self._listings[folder] = sorted((e.name.lower(), Path(e.path)) for e in entries
                                                if e.is_file())
        return self._listings[folder]

    def find(self, path, name, loose=False):
        """The file for a clip, or None.

        Args:
            path: where the timeline says the file is (from :func:`reference_path`), or None.
            name: the media's file name (or clip name) to look up in the media folders.
            loose: match another extension too (see the class).
        """
        if isinstance(path, Path) and path.is_file():
            return path
        if not name:
            return None
        key = name.lower()
        stem = PurePosixPath(key).stem if has_extension(name) else key
        loose = loose or not has_extension(name)
        for folder in self.media_dirs:
            files = self._files(folder)
            exact = [p for n, p in files if n == key]
            if exact:
                return exact[0]
            similar = [p for n, p in files if loose and has_extension(n)
                       and PurePosixPath(n).stem == stem]
            if similar:
                return similar[0]
        return None


@dataclass(frozen=True)
class MediaInfo:
    """What a media file's picture is: its first video stream, as ffprobe reads it.

    Attributes:
        fps: frame rate (exact for NTSC rates), or 0.0 when unknown.
        duration_s: length of the stream (else the file) in seconds.
        timecode_s: the first frame's timecode in seconds, or None when the file has none.
    """

    fps: float
    duration_s: float
    timecode_s: float | None


def timecode_seconds(timecode, fps):
    """Seconds of an SMPTE timecode (``HH:MM:SS:FF``; ``;`` = drop-frame) at ``fps``."""
    m = _TIMECODE.fullmatch(timecode.strip())
    if not m or fps <= 0:
        raise ValueError(f"not a timecode at {fps:g} fps: {timecode!r}")
    h, mi, s, sep, f = m.groups()
    nominal = round(fps)
    minutes = int(h) * 60 + int(mi)
    frames = (minutes * 60 + int(s)) * nominal + int(f)
    if sep in ";.":  # drop-frame: frame numbers 0 and 1 (per 30) skipped each minute but every 10th
        frames -= (nominal // 30) * 2 * (minutes - minutes // 10)
    return frames / fps


def probe_media(path):
    """:class:`MediaInfo` of a media file (ffprobe).

    Raises:
        ValueError: the file is not readable as video (no video stream, bad timecode...); the
            message starts with the file's name.
        RenderError: no ffprobe on this machine.
    """
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise RenderError("ffprobe not found (it comes with FFmpeg): it reads the media's start "
                          "timecodes")
    name = Path(path).name
    entries = ("stream=codec_type,r_frame_rate,avg_frame_rate,duration:stream_tags=timecode:"
               "format=duration:format_tags=timecode")
    try:
        out = run([ffprobe, "-v", "error", "-show_entries", entries, "-of", "json",
                   media_url(path)], name)
    except RenderError as e:   # the file, not the tool, is at fault
        raise ValueError(str(e)) from None
    facts = json.loads(out or "{}")
    streams, fmt = facts.get("streams") or [], facts.get("format") or {}
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None:
        raise ValueError(f"{name}: no video stream")
    fps = snap_rate(frame_rate(video.get("r_frame_rate")) or frame_rate(video.get("avg_frame_rate")))
    try:
        duration = float(video.get("duration") or fmt.get("duration"))
    except (TypeError, ValueError):
        duration = math.inf  # unknown length: nothing to check against
    # The start timecode: the video stream's tag, else the file's, else a timecode track's.
    tags = [video.get("tags") or {}, fmt.get("tags") or {}] + [s.get("tags") or {} for s in streams]
    timecode = next((t["timecode"] for t in tags if t.get("timecode")), None)
    try:
        start = None if timecode is None else timecode_seconds(timecode, fps)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return MediaInfo(fps, duration, start)
