"""What is scored: a video file (or a range of it), an edit list (an editor's cut as JSON, as the
Blender add-on writes), or an editor's timeline (OpenTimelineIO: .otio, FCP 7 XML, FCPXML, EDL).

Each kind knows the files it reads (so that no output may replace one), how to measure its
rhythm, and where its speech is (for ducking). The ``Scorer`` handles them alike.
"""

from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .files import check_input_file
from .timeline import is_timeline
from .video.edit import is_edit_list

VIDEO, EDIT, TIMELINE = "video", "edit", "timeline"


@dataclass(frozen=True)
class Source:
    """A scoring input.

    Attributes:
        kind: ``"video"``, ``"edit"`` or ``"timeline"``.
        path: the file given (None for an in-memory OpenTimelineIO timeline).
        start, end: the scored range of a video file (seconds; None = its start / end).
        edit: the ``EditList`` of an edit list or a timeline.
        timeline: the ``timeline.LoadedTimeline`` of a timeline.
    """

    kind: str
    path: Path | None
    start: float | None = None
    end: float | None = None
    edit: object = None
    timeline: object = None

    @classmethod
    def open(cls, video, start=None, end=None, media_dirs=()):
        """The source ``video`` names: a video file, an edit list (.json), a timeline file or
        an ``otio.schema.Timeline``. Timelines and edit lists are read (and their media found)
        now, before any long work.

        Raises:
            InputError: a missing or unreadable input; a range or ``media_dirs`` given for a
                kind that has none.
        """
        if not isinstance(video, (str, Path)):   # an in-memory OpenTimelineIO timeline
            return cls._timeline(video, start, end, media_dirs)
        if is_timeline(video):
            return cls._timeline(check_input_file(video, "timeline"), start, end, media_dirs)
        if media_dirs:
            raise InputError(f"{video}: --media-dir is for editors' timelines "
                             "(.otio, .xml, .fcpxml, .edl)")
        path = check_input_file(video, "video")
        if is_edit_list(path):
            from .video.edit import EditList

            _whole(path, start, end)
            return cls(EDIT, path, edit=EditList.from_json(path))
        return cls(VIDEO, path, start, end)

    @classmethod
    def _timeline(cls, source, start, end, media_dirs):
        from .timeline import load_timeline

        _whole(source, start, end)
        loaded = load_timeline(source, media_dirs=media_dirs)
        return cls(TIMELINE, loaded.source, edit=loaded.edit, timeline=loaded)

    @property
    def inputs(self):
        """Every file the run reads from this source: the file given and the media an edit
        list or a timeline plays."""
        media = [] if self.edit is None else [
            s.path for s in (*self.edit.segments, *(self.edit.sounds or ())) if s.path is not None]
        return tuple(p for p in (self.path, *media) if p is not None)

    def analyze(self, scorer, tempo, progress):
        """The rhythm of what the viewer sees, mapped to ``scorer``'s control values."""
        if self.edit is None:
            return scorer.analyze(self.path, tempo=tempo, start=self.start, end=self.end,
                                  progress=progress)
        from .video.edit import analyze_edit

        return analyze_edit(self.edit, tempo=tempo, progress=progress,
                            music_stats=scorer.stats.histograms())

    def speech_finder(self, rhythm):
        """``() -> [(start_s, end_s), ...]``: the speech heard, in the music's seconds."""
        from .audio.speech import detect_speech, edit_speech

        if self.edit is not None:
            return lambda: edit_speech(self.edit)
        start = rhythm.start_s
        return lambda: detect_speech(self.path, start, start + rhythm.duration_s)


def _whole(source, start, end):
    if start is not None or end is not None:
        raise InputError(f"{source}: an edit list or a timeline is scored whole; --start and "
                         "--end are for a video file")
