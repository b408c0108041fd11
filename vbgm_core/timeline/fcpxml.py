"""What OpenTimelineIO's FCPXML reader (otio-fcpx-xml-adapter 1.0) gets wrong, read from the
file itself: a project that starts at a timecode is placed that far into its tracks (fixed
here); an NTSC rate (29.97 fps...) is counted as the whole number below it (a project using
one is read again here at its exact rate, and every clip's place checked against the file);
multicam clips are left out and retimed clips play at normal speed (both refused: picture
would be missing or wrong); generators make it fail (named). Checked on Final Cut Pro 10.x
exports (tests/fixtures/timelines/README.md).
"""

from dataclasses import dataclass
from fractions import Fraction
from functools import cache, cached_property
from xml.etree import ElementTree

from ..errors import InputError

# How far (in frames) the reader may miss a project's length: it truncates every position and
# length to a whole frame (a float's 17.999... is frame 17).
SLACK_FRAMES = 2
# Where a Final Cut project cannot be read here, one can: Resolve reads FCPXML and writes .otio.
_ELSEWHERE = "open it in DaVinci Resolve, which reads FCPXML, and export .otio"


def rate_of(fmt):
    """A ``<format>``'s exact frame rate (``Fraction(30000, 1001)``), or None without one."""
    frame = seconds(fmt.get("frameDuration"))
    return 1 / frame if frame else None


def seconds(value):
    """Seconds of an FCPXML time (``"3600s"``, ``"1001/30000s"``), exact; 0 for none or for a
    damaged one (the reader says what is wrong with it)."""
    try:
        return Fraction(value.strip().rstrip("s")) if value else Fraction(0)
    except (ValueError, ZeroDivisionError):
        return Fraction(0)


@cache
def _exact_reader(otio):
    """The adapter's reader class, counting frames at their formats' exact rates.

    The adapter computes a format's rate as ``int(30000 / 1001)`` (29) and truncates every
    time to frames of it (and its ``to_rational_time`` casts the rate to ``int`` again): this
    subclass keeps the exact rate (a float: ``RationalTime`` takes any) and rounds each time,
    read as an exact fraction, to the nearest frame. It is a subclass, not a patch: the
    adapter itself is left as it is, and used as it is for the projects it reads right. The
    class is the one OpenTimelineIO's plugin loader loaded (its own module object, not
    ``otio_fcpx_xml_adapter.fcpx_xml``).
    """
    base = otio.adapters.from_name("fcpx_xml").module().FcpxXml
    RationalTime, TimeRange = otio.opentime.RationalTime, otio.opentime.TimeRange

    class ExactRates(base):
        def _exact_rate(self, format_id):
            return rate_of(self._format_by_id(format_id))

        def _format_frame_rate(self, format_id):
            return float(self._exact_rate(format_id))

        def _number_of_frames(self, time_value, format_id):
            return round(seconds(time_value) * self._exact_rate(format_id))

        def _time(self, time_value, format_id):
            return RationalTime(self._number_of_frames(time_value, format_id),
                                self._format_frame_rate(format_id))

        def _time_range(self, element, format_id):
            return TimeRange(self._time(element.get("start", "0s"), format_id),
                             self._time(element.get("duration"), format_id))

        def _reference_from_id(self, asset_id, default_format):
            reference = super()._reference_from_id(asset_id, default_format)
            if isinstance(reference, otio.schema.ExternalReference):   # re-count its range
                asset = self._asset_by_id(asset_id)
                reference.available_range = self._time_range(
                    asset, asset.get("format", default_format))
            return reference

    return ExactRates


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

    @cached_property
    def _used(self):
        """``(elements, resources)``: every element of the project and of the resources it
        uses (assets, effects, compound clips' sequences, at any depth), and the resources by
        id; walked once (the checks, the rates and the generators all read it)."""
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
        used, resources = self._used
        return list(dict.fromkeys(
            e.get("name") or "unnamed" for e in used if e.tag == "video"
            and getattr(resources.get(e.get("ref")), "tag", None) == "effect"))

    def check(self):
        """Refuse, in one line, a project the reader would silently misread: one with multicam
        clips (it leaves them out) or retimed clips (a ``<timeMap>``: it plays them at normal
        speed, from other source frames than the editor's)."""
        used = self._used[0]
        if self.element.find(".//mc-clip") is not None:
            raise InputError(f"{self.path}: holds multicam clips, which OpenTimelineIO's FCPXML "
                             "reader leaves out (their picture would be missing)")
        retimed = [e for e in used if e.find("./timeMap") is not None]
        if retimed:
            raise InputError(f"{self.path}: holds retimed clips (\"{retimed[0].get('name')}\"), "
                             "which OpenTimelineIO's FCPXML reader plays at normal speed (their "
                             f"picture would be wrong); {_ELSEWHERE}")

    def cannot_read(self):
        """An InputError for a read that failed on the project's generators, else None."""
        generators = self.generators()
        if not generators:
            return None
        return InputError(f"{self.path}: OpenTimelineIO's FCPXML reader cannot read its "
                          f"generators ({', '.join(generators)}); {_ELSEWHERE}")

    def exact_rates(self):
        """Whether the project uses a format at a rate that is not a whole number (NTSC: 23.976,
        29.97, 59.94 fps), which the reader counts as the whole number below it."""
        used = {e.get("format") for e in self._used[0]}
        return any(fmt.get("id") in used and rate_of(fmt) and rate_of(fmt).denominator != 1
                   for fmt in self.root.iterfind("./resources/format"))

    def read_exact(self, otio):
        """What the reader reads at the formats' exact rates (``_exact_reader``), for a project
        whose rates ``exact_rates`` says the adapter itself miscounts; raises what it raises."""
        return _exact_reader(otio)(self.path.read_bytes()).to_otio()

    def _misplaced(self, otio, sequence, stack, rate, origin):
        """The first clip of ``sequence`` that the reader's ``stack`` (its tracks, one a lane)
        places more than ``SLACK_FRAMES`` from where the file does, as ``(name, read s, file s)``;
        compound clips' insides are checked too. ``origin``: the file's time (s) of the
        stack's 0 (the project's start timecode)."""
        parents = {c: p for p in sequence.iter() for c in p}

        def at(element):   # where the file places an element, in the sequence's time (s)
            parent = parents.get(element)
            if parent is None or parent is sequence:
                return Fraction(0)   # the sequence's spine
            return at(parent) - seconds(parent.get("start")) + seconds(element.get("offset"))

        placed = {}   # lane → [(s, name)], as the reader finds the clips (its lanes, its clips)
        for element in sequence.iter():
            if element.tag not in ("video", "audio", "ref-clip", "asset-clip"):
                continue
            clip = element
            while clip.tag not in ("clip", "asset-clip", "ref-clip"):
                clip = parents[clip]
            parent = parents.get(clip)
            lane = parent.get("lane") if parent is not None and parent.tag == "spine" and \
                parent.get("lane") else clip.get("lane", "0")
            placed.setdefault(lane, []).append((at(clip) - origin, clip.get("name") or ""))
        media = {m.get("name"): m.find("./sequence")
                 for m in self.root.iterfind("./resources/media")}
        for track in stack:
            read = [(track.range_of_child(c).start_time.to_seconds(), c) for c in track
                    if not isinstance(c, otio.schema.Gap)]
            wanted = sorted(placed.pop(track.name, []), key=lambda p: p[0])
            for (got, item), (want, name) in zip(sorted(read, key=lambda r: r[0]), wanted):
                if abs(got - want) > SLACK_FRAMES / rate:   # each term rounded to a frame
                    return name, got, float(want)
                inner = media.get(item.name) if isinstance(item, otio.schema.Stack) else None
                if inner is not None:
                    wrong = self._misplaced(otio, inner, item, rate, Fraction(0))
                    if wrong:
                        return wrong
            if len(read) != len(wanted):   # not one clip read for each (not seen in exports)
                return (wanted or [(0, track.name)])[0][1], -1.0, float((wanted or [(0,)])[0][0])
        for lane in placed.values():   # a lane the reader left out
            return lane[0][1], -1.0, float(lane[0][0])
        return None

    def as_edited(self, otio, timeline):
        """The reader's ``timeline`` as the editor sees it, or one line saying why not.

        A project that starts at a timecode (``tcStart``, 01:00:00:00 in most) is placed that
        far into its tracks, after gaps as long: that lead-in is taken off every track that
        begins with it, and kept as the timeline's start timecode. Then the length read must
        be the project's own (its sequence's ``duration``), else the reader misplaced something
        and the score would be of another edit; and, read at an NTSC rate, every clip must be
        where the file places it (``_misplaced``: the reader misplaces connected storylines).
        """
        sequence = self.element.find("./sequence")
        fmt = next((f for f in self.root.iterfind("./resources/format")
                    if sequence is not None and f.get("id") == sequence.get("format")), None)
        rate = rate_of(fmt) if fmt is not None else None
        if not rate or rate < 1:
            return timeline   # no sequence, or no frame rate: nothing to check against
        exact = self.exact_rates()   # read by read_exact: check every clip's place
        fps = float(rate)   # RationalTime's rate: 29.97002997... where it is 30000/1001
        start = seconds(sequence.get("tcStart"))
        lead_in = otio.opentime.RationalTime(round(start * rate), fps)
        if lead_in.value > 0:
            for track in timeline.tracks:
                first = track[0] if len(track) else None
                gap = first.duration().rescaled_to(fps) \
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
        wrong = self._misplaced(otio, sequence, timeline.tracks, rate, start) if exact else None
        if wrong:
            name, got, want = wrong
            where = "leaves out" if got < 0 else "places"
            at = "" if got < 0 else f" at {got:.2f} s"
            raise InputError(f"{self.path}: OpenTimelineIO's FCPXML reader {where} the clip "
                             f"\"{name}\"{at}, which the project has at {want:.2f} s (the score would be "
                             f"of another edit); {_ELSEWHERE}")
        return timeline
