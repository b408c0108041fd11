"""What the viewer sees (and hears) of an OpenTimelineIO timeline: its stack flattened to shots.

A shot is a stretch of timeline time showing one clip, with the clip's source time at its start
and the speed its source plays at. Flattening follows the editors' rules:

- in a stack, a later track is on top: the top-most clip at each moment is what is seen
  (gaps, disabled clips and disabled tracks are transparent);
- a clip's (or a nested composition's) ``source_range`` trims it, a ``LinearTimeWarp`` scales
  its speed (a ``FreezeFrame``, speed 0, holds one picture: a still);
- nested stacks and tracks are flattened the same way, in their own time;
- a transition (a dissolve) becomes a cut at its midpoint: the outgoing clip plays on to it (its
  handle), the incoming one starts there;
- a generated picture (a ``GeneratorReference``, or a clip without media whose name is a
  generator's: "Black Video", "Color Matte", "Bars and Tone", "Title"...) is a still picture;
  a title (text) is drawn over what lies beneath, so it is seen only where nothing is.
"""

import math
import re
from dataclasses import dataclass, replace
from operator import attrgetter

import opentimelineio as otio

VIDEO, AUDIO = otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio
# Shorter pieces are rounding left-overs (a cut computed twice), not pictures.
_EPS_S = 1e-9
# Names of pictures an editor makes, for clips without a media file (an EDL's black, bars...).
_GENERATED = {"black", "black video", "slug", "solid", "solid color", "solid colour",
              "color", "colour", "color matte", "colour matte", "matte", "bars",
              "bars and tone", "color bars", "colour bars", "smpte bars", "smptebars", "title",
              "text", "caption", "subtitle", "countdown", "gradient", "generator"}
_START = attrgetter("start_s")
# A title's text lies over the picture beneath (editors' titles have an alpha channel).
_TITLE = re.compile(r"(?<![a-z0-9])(title|text|caption|subtitle|lower third)s?(?![a-z0-9])")


@dataclass(frozen=True)
class Shot:
    """One clip seen (or heard) over ``[start_s, end_s)`` of a composition's time.

    Attributes:
        clip: the ``otio.schema.Clip``.
        source_s: the clip's source time (s, on its media's timecode clock) at ``start_s``.
        speed: source seconds per timeline second (1 real speed, < 0 backwards, 0 frozen).
        still: a picture that needs no media (generated, or a frozen frame).
        overlay: a title: seen only where nothing lies beneath.
    """

    start_s: float
    end_s: float
    clip: otio.schema.Clip
    source_s: float
    speed: float = 1.0
    still: bool = False
    overlay: bool = False

    @property
    def source_end_s(self):
        return self.source_s + (self.end_s - self.start_s) * self.speed

    def trimmed(self, lo, hi):
        """The part of the shot inside ``[lo, hi)``, or None."""
        start, end = max(self.start_s, lo), min(self.end_s, hi)
        if end - start <= _EPS_S:
            return None
        return replace(self, start_s=start, end_s=end,
                       source_s=self.source_s + (start - self.start_s) * self.speed)


def _words(text):
    return re.sub(r"[\s_.-]+", " ", (text or "").lower()).strip()


def _is_generated(clip):
    """A picture the editor makes: a generator reference, or a clip without a media file whose
    name is a generator's (a name with a file extension is a missing file, never this)."""
    ref = clip.media_reference
    if isinstance(ref, otio.schema.GeneratorReference):
        return True
    no_file = isinstance(ref, otio.schema.MissingReference) or (
        isinstance(ref, otio.schema.ExternalReference) and not ref.target_url)
    return no_file and _words(clip.name) in _GENERATED


def _is_title(clip):
    ref = clip.media_reference
    kind = ref.generator_kind if isinstance(ref, otio.schema.GeneratorReference) else ""
    return any(_TITLE.search(_words(text)) for text in (clip.name, kind))


def _enabled(item):
    """Whether an item is switched on. FCP 7 XML's ``<enabled>`` reaches OpenTimelineIO only in
    the adapter's metadata (otio-fcp-adapter 1.0 leaves ``Item.enabled`` true)."""
    return item.enabled and item.metadata.get("fcp_xml", {}).get("enabled") != "FALSE"


def _warp(item):
    """The speed an item's effects play its content at (the product of its time warps)."""
    return math.prod(e.time_scalar for e in item.effects
                     if isinstance(e, otio.schema.LinearTimeWarp))  # FreezeFrame: 0


def _trimmed_start(item):
    """Start (s, the item's own time) of its trimmed range. A track's negative start is how the
    EDL reader (otio-cmx3600-adapter) keeps the record timecode of its first event: nothing
    lies at negative track time, so such a track is read from its start."""
    start = item.trimmed_range().start_time.to_seconds()
    return 0.0 if isinstance(item, otio.schema.Track) and start < 0 else start


def _content(item, lo, hi, kind):
    """Shots of ``item`` over ``[lo, hi)`` of its own time (a clip's own time is its source)."""
    if isinstance(item, otio.schema.Gap) or not _enabled(item):
        return []
    if isinstance(item, otio.schema.Stack):
        return _stack_content(item, lo, hi, kind)
    if isinstance(item, otio.schema.Track):
        return _track_content(item, lo, hi, kind)
    if not isinstance(item, otio.schema.Clip):
        return []  # an unknown schema: nothing the viewer can be shown
    if not _is_generated(item):
        return [Shot(lo, hi, item, lo)]
    return [Shot(lo, hi, item, lo, still=True, overlay=_is_title(item))] if kind == VIDEO else []


def _placed(item, at_s, lo, hi, kind):
    """Shots of a child seen over ``[lo, hi)`` of its parent's time, its trimmed range starting
    at the parent's ``at_s`` and played at the speed of its time warps."""
    start, speed = _trimmed_start(item), _warp(item)
    if hi - lo <= _EPS_S:
        return []
    if speed == 0:  # a frozen frame: the picture at the start of its range (its first ms), held
        frozen = _content(item, start, start + 1e-3, kind) if kind == VIDEO else []
        return [Shot(lo, hi, frozen[0].clip, frozen[0].source_s, 0.0, still=True)] if frozen else []
    u0, u1 = sorted((start + (lo - at_s) * speed, start + (hi - at_s) * speed))
    placed = []
    for s in _content(item, u0, u1, kind):
        a, b = sorted((at_s + (s.start_s - start) / speed, at_s + (s.end_s - start) / speed))
        source = s.source_s if speed > 0 else s.source_end_s
        placed.append(replace(s, start_s=a, end_s=b, source_s=source, speed=s.speed * speed))
    return placed


def _midpoint_shift(children, i):
    """How far a transition at ``children[i]`` (if it is one) moves its cut: to its midpoint."""
    if 0 <= i < len(children) and isinstance(children[i], otio.schema.Transition):
        t = children[i]
        return (t.out_offset.to_seconds() - t.in_offset.to_seconds()) / 2
    return 0.0


def _track_content(track, lo, hi, kind):
    if track.kind != kind:
        return []
    children, found, at = list(track), [], 0.0
    for i, child in enumerate(children):
        if isinstance(child, otio.schema.Transition):
            continue  # it takes no time of its own: its neighbours overlap under it
        end = at + child.trimmed_range().duration.to_seconds()
        a = max(lo, at + _midpoint_shift(children, i - 1))
        b = min(hi, end + _midpoint_shift(children, i + 1))
        if b - a > _EPS_S:
            found += _placed(child, at, a, b, kind)
        at = end
    return found


def _cover(layer, shot):
    """``layer`` (sorted, disjoint shots) with ``shot`` laid over it."""
    if shot.overlay:  # seen only in the holes of the layer
        holes, t = [], shot.start_s
        for s in layer:
            holes.append((t, min(s.start_s, shot.end_s)))
            t = max(t, s.end_s)
        holes.append((t, shot.end_s))
        return sorted(layer + [p for h in holes if (p := shot.trimmed(*h))], key=_START)
    kept = [p for s in layer for p in (s.trimmed(-math.inf, shot.start_s),
                                       s.trimmed(shot.end_s, math.inf)) if p]
    return sorted(kept + [shot], key=_START)


def _stack_content(stack, lo, hi, kind):
    found = []
    for child in stack:  # bottom to top
        child_shots = _placed(child, 0.0, lo, min(hi, child.duration().to_seconds()), kind)
        if kind == AUDIO:  # sounds mix: every one is heard
            found += child_shots
        else:
            for shot in child_shots:
                found = _cover(found, shot)
    return found


def flatten(timeline, kind=VIDEO):
    """The shots of a timeline, in seconds from its start.

    Args:
        timeline: an ``otio.schema.Timeline``.
        kind: ``VIDEO``: the picture (the top-most clip wins; shots sorted and disjoint);
            ``AUDIO``: every clip heard (shots may overlap).
    """
    stack = timeline.tracks
    return _placed(stack, 0.0, 0.0, stack.duration().to_seconds(), kind)
