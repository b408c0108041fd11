"""What OpenTimelineIO's FCPXML reader (otio-fcpx-xml-adapter 1.0) gets wrong, read from the
file itself: a project that starts at a timecode is placed that far into its tracks (fixed
here), an NTSC rate is counted as the whole number below it and multicam clips are left out
(both refused: every cut would move, or picture would be missing), generators make it fail
(named). Checked on Final Cut Pro 10.x exports (tests/fixtures/timelines/README.md).
"""

from dataclasses import dataclass
from fractions import Fraction
from xml.etree import ElementTree

from ..errors import InputError

# How far (in frames) the reader may miss a project's length: it truncates every position and
# length to a whole frame (a float's 17.999... is frame 17).
SLACK_FRAMES = 2
# Where a Final Cut project cannot be read here, one can: Resolve reads FCPXML and writes .otio.
_ELSEWHERE = "open it in DaVinci Resolve, which reads FCPXML, and export .otio"


def seconds(value):
    """Seconds of an FCPXML time (``"3600s"``, ``"1001/30000s"``), exact; 0 for none or for a
    damaged one (the reader says what is wrong with it)."""
    try:
        return Fraction(value.strip().rstrip("s")) if value else Fraction(0)
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


@dataclass
class Project:
    """The project of an FCPXML file that the reader reads (the first of a library's first
    event), with the file's XML root."""

    path: object
    root: ElementTree.Element
    element: ElementTree.Element

    @classmethod
    def of(cls, path):
        """The file's project, or None where it is not XML or holds none (the reader says
        why)."""
        try:
            root = ElementTree.fromstring(path.read_bytes())
        except (ElementTree.ParseError, OSError):
            return None
        event = root.find("./library/event")
        event = event if event is not None else root.find("./event")
        project = (event if event is not None else root).find("./project")
        return None if project is None else cls(path, root, project)

    def _used(self):
        """``(elements, resources)``: every element of the project and of the resources it
        uses (assets, effects, compound clips' sequences, at any depth), and the resources by
        id."""
        resources = {e.get("id"): e for e in self.root.iterfind("./resources/*")}
        used, todo, seen = [], [self.element], set()
        while todo:
            for element in todo.pop().iter():
                used.append(element)
                ref = element.get("ref")
                if ref in resources and ref not in seen:
                    seen.add(ref)
                    todo.append(resources[ref])
        return used, resources

    def generators(self):
        """Names of the generators (a ``<video>`` of an ``<effect>``: clouds, solids...) the
        project uses, on which the reader fails."""
        used, resources = self._used()
        return list(dict.fromkeys(
            e.get("name") or "unnamed" for e in used if e.tag == "video"
            and getattr(resources.get(e.get("ref")), "tag", None) == "effect"))

    def check(self):
        """Refuse, in one line, a project the reader would silently misread: one at an NTSC
        rate (it counts 29.97 fps as 29, 23.976 as 23, and truncates every time to those
        frames: cuts move, gaps appear, the length is wrong), or one with multicam clips (it
        leaves them out)."""
        used = {e.get("format") for e in self._used()[0]}
        for fmt in self.root.iterfind("./resources/format"):
            frame = seconds(fmt.get("frameDuration"))
            if fmt.get("id") in used and frame and (1 / frame).denominator != 1:
                raise InputError(
                    f"{self.path}: its {fmt.get('name') or 'video'} format runs at "
                    f"{float(1 / frame):.3f} fps, which OpenTimelineIO's FCPXML reader counts as "
                    f"{int(1 / frame)} fps (every cut would move); {_ELSEWHERE}")
        if self.element.find(".//mc-clip") is not None:
            raise InputError(f"{self.path}: holds multicam clips, which OpenTimelineIO's FCPXML "
                             "reader leaves out (their picture would be missing)")

    def cannot_read(self):
        """An InputError for a read that failed on the project's generators, else None."""
        generators = self.generators()
        if not generators:
            return None
        return InputError(f"{self.path}: OpenTimelineIO's FCPXML reader cannot read its "
                          f"generators ({', '.join(generators)}); {_ELSEWHERE}")

    def as_edited(self, otio, timeline):
        """The reader's ``timeline`` as the editor sees it, or one line saying why not.

        A project that starts at a timecode (``tcStart``, 01:00:00:00 in most) is placed that
        far into its tracks, after gaps as long: that lead-in is taken off every track that
        begins with it, and kept as the timeline's start timecode. Then the length read must
        be the project's own (its sequence's ``duration``), else the reader misplaced something
        and the score would be of another edit.
        """
        sequence = self.element.find("./sequence")
        fmt = next((f for f in self.root.iterfind("./resources/format")
                    if sequence is not None and f.get("id") == sequence.get("format")), None)
        frame = seconds(fmt.get("frameDuration")) if fmt is not None else 0
        if not 0 < frame <= 1:
            return timeline   # no sequence, or no frame rate: nothing to check against
        rate = int(1 / frame)   # a whole number: check() refused the others
        lead_in = otio.opentime.RationalTime(int(seconds(sequence.get("tcStart")) * rate), rate)
        if lead_in.value > 0:
            for track in timeline.tracks:
                first = track[0] if len(track) else None
                gap = first.duration().rescaled_to(rate) \
                    if isinstance(first, otio.schema.Gap) else None
                if gap is None or gap.value < lead_in.value - 1:
                    continue   # the reader placed this track (a connected lane) from 0
                if gap.value > lead_in.value:
                    first.source_range = otio.opentime.TimeRange(first.source_range.start_time,
                                                                 gap - lead_in)
                else:
                    del track[0]   # the lead-in itself (the reader truncates it to a frame)
            if timeline.global_start_time is None:
                timeline.global_start_time = lead_in
        lasts = seconds(sequence.get("duration"))
        read = timeline.duration().to_seconds()
        if lasts and abs(read - lasts) > SLACK_FRAMES / rate:
            raise InputError(f"{self.path}: OpenTimelineIO's FCPXML reader reads {read:.2f} s of "
                             f"the project \"{self.element.get('name')}\", which lasts "
                             f"{float(lasts):.2f} s (it leaves out or misplaces part of it); "
                             f"{_ELSEWHERE}")
        return timeline
