"""Any editor's timeline as an edit list: OpenTimelineIO reads it, vbgm sees what it shows.

``load_timeline`` reads an OpenTimelineIO file (``.otio``), a Final Cut Pro 7 / Premiere XML
(``.xml``), a Final Cut Pro X XML (``.fcpxml``) or a CMX 3600 EDL (``.edl``) with the
OpenTimelineIO adapters, flattens it to what the viewer sees (``flatten.py``), finds its media
(``media.py``) and returns an ``EditList`` (``video/edit.py``) that ``analyze_edit`` measures
like the Blender add-on's, every edit point a cut. Nothing slow starts before every clip on
screen has its media: the missing ones are all named in one error.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, VbgmError
from ..files import check_input_file
from . import fcpxml
from ..media import media_duration
from ..video.edit import EditList, Segment, boundaries
from .media import MediaFinder, probe_media, reference_path, snap_rate

# The formats read, by suffix, with the OpenTimelineIO adapter of each.
ADAPTERS = {".otio": "otio_json", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml", ".edl": "cmx_3600"}
TIMELINE_SUFFIXES = tuple(ADAPTERS)
INSTALL_HINT = "pip install 'vbgm[timeline]'"
# Rates an EDL (which does not store one) is read at, lowest first, when its media do not say.
_EDL_RATES = (24, 25, 30, 48, 50, 60)
_TIMECODE_FRAMES = re.compile(r"\b\d\d:\d\d:\d\d[:;](\d\d)\b")
# How far (in frames) a clip may read past its media's ends before it is an error: editors
# round, and a dissolve's midpoint falls between frames.
_SLACK_FRAMES = 1.5


def is_timeline(path):
    """Whether a scoring input is an editor's timeline (by its suffix) rather than a video."""
    return path is not None and Path(path).suffix.lower() in TIMELINE_SUFFIXES


def require_otio():
    """The ``opentimelineio`` module, or an ``InputError`` naming the extra that installs it."""
    try:
        import opentimelineio
    except ImportError:
        raise InputError("editors' timelines need OpenTimelineIO and its adapters: "
                         f"{INSTALL_HINT}") from None
    return opentimelineio


@dataclass(frozen=True)
class LoadedTimeline:
    """An editor's timeline and what the viewer sees of it.

    Attributes:
        timeline: the ``otio.schema.Timeline`` as read (untouched: ``write_scored_timeline``
            adds the score to a copy).
        edit: the ``EditList``: the top-most clip at each moment, in seconds from the start.
        cuts_s: the edit points (s): every segment's start and end inside the timeline (gaps'
            edges and dissolves' midpoints included), sorted.
        fps: the timeline's frame rate.
        duration_s: the timeline's length (s).
        source: the file it was read from, or None.
    """

    timeline: object
    edit: EditList
    cuts_s: tuple
    fps: float
    duration_s: float
    source: Path | None = None


def timeline_rate(timeline):
    """A timeline's frame rate: its start timecode's, else its duration's."""
    start = timeline.global_start_time
    return (start if start is not None else timeline.tracks.duration()).rate


def _edl_fits(edl_text, rate):
    """Whether every timecode of an EDL is a valid one at ``rate`` (its frame numbers fit)."""
    from opentimelineio.opentime import RationalTime

    largest = max((int(f) for f in _TIMECODE_FRAMES.findall(edl_text)), default=0)
    return RationalTime.is_valid_timecode_rate(rate) and largest < round(rate)


def _lowest_edl_rate(edl_text):
    """The lowest common rate an EDL's timecodes fit (the adapter then refuses none)."""
    return next((r for r in _EDL_RATES if _edl_fits(edl_text, r)), _EDL_RATES[-1])


def adapter_for(otio, path):
    """The name of the OpenTimelineIO adapter for a timeline file, by its suffix.

    Raises:
        InputError: the adapter's plugin is not installed.
    """
    name = ADAPTERS[Path(path).suffix.lower()]
    try:
        otio.adapters.from_name(name)
    except otio.exceptions.NotSupportedError:
        raise InputError(f"{path}: the OpenTimelineIO adapter for {Path(path).suffix} files "
                         f"({name}) is not installed: {INSTALL_HINT}") from None
    return name


def _read_file(otio, path, rate=None):
    """The ``Timeline`` in a file (the first of a collection, as an FCPX library holds)."""
    adapter = adapter_for(otio, path)
    project = fcpxml.Project.of(path) if path.suffix.lower() == ".fcpxml" else None
    if project is not None:
        project.check()
    try:
        if project is not None and project.exact_rates():   # 29.97 fps...: the adapter miscounts
            found = project.read_exact(otio)
        else:
            found = otio.adapters.read_from_file(str(path), adapter_name=adapter,
                                                 **({"rate": rate} if rate else {}))
    except Exception as e:  # noqa: BLE001 (the adapters raise anything on a damaged file)
        detail = " ".join(str(e).split()) or type(e).__name__
        known = project.cannot_read() if project is not None else None
        if known is not None:   # a valid file, not a damaged one: say what the reader cannot read
            raise known from None
        raise InputError(f"{path}: not a readable {path.suffix.lstrip('.').upper()} timeline "
                         f"({detail})") from None
    if isinstance(found, otio.schema.SerializableCollection):
        timelines = found.find_children(descended_from_type=otio.schema.Timeline,
                                        shallow_search=True)
        found = timelines[0] if timelines else None
    if not isinstance(found, otio.schema.Timeline):
        raise InputError(f"{path}: holds no timeline")
    if project is not None:
        found = project.as_edited(otio, found)
    return found


class _Media:
    """The media of a timeline's clips: found (relinked), probed once each."""

    def __init__(self, name, base_dir, media_dirs, loose):
        self.name, self.base_dir, self.loose = name, base_dir, loose
        self.finder = MediaFinder(media_dirs)
        self._info = {}  # path → MediaInfo, or why it cannot be read

    def reference(self, clip):
        """``(path, name)``: where the timeline says a clip's file is (None when it does not:
        an EDL's clip, a missing reference), and the name to look it up by."""
        url = getattr(clip.media_reference, "target_url", None)
        if url:
            path = reference_path(url, self.base_dir)
            return path, path.name
        return None, clip.name

    def find(self, clip):
        return self.finder.find(*self.reference(clip), loose=self.loose)

    def check_found(self, clips):
        """Raise one ``InputError`` naming every clip whose media cannot be found."""
        missing = [c for c in clips if self.find(c) is None]
        if not missing:
            return
        names = dict.fromkeys(self.reference(c)[1] or "an unnamed clip" for c in missing)
        n, dirs = len(missing), self.finder.media_dirs
        looked = f" (looked in {', '.join(str(d) for d in dirs)})" if dirs else ""
        raise InputError(f"{self.name}: {n} clip{'s have' if n > 1 else ' has'} no media "
                         f"({', '.join(names)}){looked}; use --media-dir DIR to say where "
                         f"{'they are' if n > 1 else 'it is'}")

    def info(self, path):
        """``MediaInfo`` of a found file, or the reason it cannot be read (a string)."""
        if path not in self._info:
            try:
                self._info[path] = probe_media(path)
            except OSError as e:
                self._info[path] = f"{path.name}: {e.strerror or e}"
            except ValueError as e:   # its message names the file
                self._info[path] = str(e)
        return self._info[path]


def _media_rate(media, shots):
    """The frame rate of the visible clips' media, when they all have the same; else None."""
    rates = {round(i.fps, 3): i.fps for i in (media.info(media.find(s.clip))
                                              for s in shots if not s.still)
             if not isinstance(i, str) and i.fps > 0}
    return next(iter(rates.values())) if len(rates) == 1 else None


def _segments(media, shots, heard, rate):
    """``Segment``s of the visible shots, source times counted from each file's first frame.

    Args:
        heard: ``(path, start_s, end_s)`` of the clips on the audio tracks: a segment's sound
            plays where its own media is heard.
        rate: the timeline's frame rate (for media whose rate is unknown).

    Raises:
        InputError: one line naming every clip whose media cannot be read or does not hold the
            source range the timeline plays (another file, or another start timecode).
    """
    segments, problems = [], []
    for shot in shots:
        if shot.still:
            segments.append(Segment(None, 0.0, shot.end_s - shot.start_s, shot.start_s,
                                    shot.end_s, audio=False))
            continue
        path = media.find(shot.clip)
        info = media.info(path)
        if isinstance(info, str):
            problems.append(info)
            continue
        start = info.timecode_s
        if start is None:  # the file lost its timecode (a transcode?): trust the timeline's
            available = getattr(shot.clip.media_reference, "available_range", None)
            start = available.start_time.to_seconds() if available is not None else 0.0
        s0, s1 = sorted((shot.source_s - start, shot.source_end_s - start))
        slack = _SLACK_FRAMES / (info.fps or rate)
        if s0 < -slack or s1 > info.duration_s + slack:
            problems.append(f"{shot.clip.name} at {shot.start_s:.2f} s plays {s0:.2f}-{s1:.2f} s "
                            f"of {path.name}, which lasts {info.duration_s:.2f} s (another "
                            "file, or another start timecode?)")
            continue
        audio = any(p == path and a < shot.end_s and b > shot.start_s for p, a, b in heard)
        shift = min(s0, 0.0)  # a hair before the first frame: read from it, at the same speed
        segments.append(Segment(path, s0 - shift, s1 - shift, shot.start_s, shot.end_s, audio))
    if problems:
        n = len(problems)
        raise InputError(f"{media.name}: {n} clip{'s' if n > 1 else ''} cannot be played: "
                         f"{'; '.join(problems)}")
    return segments


def _sounds(media, shots):
    """What the audio tracks play, as ``Segment``s (where speech is looked for, to duck): a
    clip heard is searched in its own media, a voice-over included. A clip whose media cannot
    be found or read is not searched (the picture's media are the ones a score needs)."""
    sounds = []
    for shot in shots:
        path = media.find(shot.clip)
        if path is None or shot.speed <= 0:
            continue
        info = media.info(path)
        if isinstance(info, str):    # no picture (a WAV): no timecode, its sound's length
            try:
                start, length = 0.0, media_duration(path, "audio")
            except VbgmError:
                continue
        else:
            start, length = info.timecode_s or 0.0, info.duration_s
        s0, s1 = shot.source_s - start, min(shot.source_end_s - start, length)
        if s0 < 0 or s1 <= s0:
            continue
        end = shot.start_s + (s1 - s0) / shot.speed
        sounds.append(Segment(path, s0, s1, shot.start_s, end))
    return sounds


def load_timeline(source, media_dirs=(), rate=None):
    """Read an editor's timeline and find what the viewer sees of it.

    Args:
        source: a timeline file (``TIMELINE_SUFFIXES``) or an ``otio.schema.Timeline``.
        media_dirs: folders to look in for media that are not where the timeline says (by
            file name, case-insensitively; an EDL's clip names, and names without an
            extension, match any extension).
        rate: frames per second of an EDL, which does not store its rate. None: the rate of
            its media when they all agree, else the lowest common rate its timecodes fit.

    Returns:
        A :class:`LoadedTimeline`.

    Raises:
        InputError: OpenTimelineIO missing; an unreadable timeline, or one without a video
            clip; clips whose media cannot be found (all named in one line) or played.
    """
    otio = require_otio()
    from .flatten import AUDIO, flatten  # imports OpenTimelineIO

    path = None if isinstance(source, otio.schema.Timeline) else Path(source)
    edl_text = None  # an EDL's text: its rate is read from its timecodes and its media
    if path is not None:
        if path.suffix.lower() not in TIMELINE_SUFFIXES:
            raise InputError(f"{path}: not a timeline ({', '.join(TIMELINE_SUFFIXES)})")
        check_input_file(path, "timeline")
        if path.suffix.lower() == ".edl":
            edl_text = path.read_text(errors="replace")
    if rate is not None and edl_text is None:
        raise InputError(f"{path or 'timeline'}: a frame rate is given for an EDL only (other "
                         "timelines store theirs)")
    if path is None:
        timeline = source
    else:
        edl_rate = None if edl_text is None else (
            snap_rate(rate) if rate is not None else _lowest_edl_rate(edl_text))
        timeline = _read_file(otio, path, edl_rate)
    name = path.name if path is not None else (timeline.name or "timeline")
    media = _Media(name, path.resolve().parent if path else None, media_dirs,
                   loose=edl_text is not None)

    shots = flatten(timeline)
    if all(s.still for s in shots):
        raise InputError(f"{name}: no video clip on the timeline (nothing to see, nothing to "
                         "score)")
    media.check_found([s.clip for s in shots if not s.still])
    if edl_text is not None and rate is None:
        media_rate = _media_rate(media, shots)
        if media_rate and media_rate != edl_rate and _edl_fits(edl_text, media_rate):
            timeline = _read_file(otio, path, media_rate)  # an EDL counts its media's frames
            shots = flatten(timeline)
    audio = flatten(timeline, AUDIO)
    heard = [(media.find(s.clip), s.start_s, s.end_s) for s in audio]
    fps, duration = timeline_rate(timeline), timeline.duration().to_seconds()
    edit = EditList(duration, fps, tuple(_segments(media, shots, heard, fps)), source=path,
                    sounds=tuple(_sounds(media, audio)))
    return LoadedTimeline(timeline, edit, tuple(boundaries(edit)), fps, duration, path)
