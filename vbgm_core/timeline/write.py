"""The scored timeline: the editor's own timeline with the music on one new audio track.

The editor opens it and finds the cut as it was, plus a track "vbgm score" holding the WAV from
the timeline's first frame to its last, with a marker at every bar line ("bar N", the bar's
chords as the comment) to cut and edit to. The format follows the output's suffix:

- ``.otio``: OpenTimelineIO's own; everything is kept.
- ``.xml``: Final Cut Pro 7 XML (Premiere, Resolve, Final Cut Pro 7). Its tracks have no names:
  the score is the last audio track. Marker comments are written (``<comment>``).
- ``.fcpxml``: Final Cut Pro X. The score is a connected audio clip; FCPXML markers carry no
  comment, so the chords are left out there.
- ``.edl`` is refused: OpenTimelineIO's EDL writer keeps one video track and drops every audio
  track, so the score would silently be lost.

The WAV is referenced by an absolute ``file://`` URL: the editors' XML formats need one, and an
editor that finds the file moved relinks it by name.
"""

import copy
from itertools import pairwise
from pathlib import Path

from ..errors import InputError
from ..files import atomic_path, check_output
from .read import adapter_for, require_otio, timeline_rate

SCORE_TRACK = "vbgm score"
WRITTEN_SUFFIXES = (".otio", ".xml", ".fcpxml")


def _bar_comments(bar_times_s, chords):
    """The comment of each bar's marker: its chord names joined, or "" without chords."""
    if chords is None:
        return [""] * len(bar_times_s)
    if len(chords) != len(bar_times_s):
        raise ValueError(f"{len(chords)} chord entries for {len(bar_times_s)} bars")
    return [c if isinstance(c, str) else ", ".join(c) for c in chords]


def _score_clip(otio, wav_path, rate, frames, duration_s, bar_times_s, comments):
    """The clip of the score: the WAV over ``frames`` frames at ``rate``, a marker per bar."""
    def at(seconds):
        return otio.opentime.RationalTime(round(seconds * rate), rate)  # markers sit on frames

    zero = otio.opentime.RationalTime(0, rate)
    reference = otio.schema.ExternalReference(
        target_url=Path(wav_path).resolve().as_uri(),
        available_range=otio.opentime.TimeRange(
            zero, otio.opentime.RationalTime(duration_s * rate, rate)))
    clip = otio.schema.Clip(name=Path(wav_path).name, media_reference=reference,
                            source_range=otio.opentime.TimeRange(
                                zero, otio.opentime.RationalTime(frames, rate)))
    for n, (t, comment) in enumerate(zip(bar_times_s, comments), 1):
        if round(t * rate) >= frames:
            break  # a bar line at the very end starts nothing on the timeline
        clip.markers.append(otio.schema.Marker(
            name=f"bar {n}", marked_range=otio.opentime.TimeRange(at(t), zero),
            # not red or green: the FCPX writer makes those to-do items
            color=otio.schema.MarkerColor.BLUE, comment=comment,
            # the FCP 7 XML writer takes a marker's comment from its metadata
            metadata={"fcp_xml": {"comment": comment}} if comment else {}))
    return clip


def write_scored_timeline(timeline, out_path, wav_path, duration_s, bar_times_s, chords=None,
                          overwrite=False, name=None):
    """Write a copy of ``timeline`` with the score on a new audio track (see the module).

    Args:
        timeline: the ``otio.schema.Timeline`` that was scored (``LoadedTimeline.timeline``);
            it is not changed.
        out_path: the file to write: ``.otio``, ``.xml`` (FCP 7 XML) or ``.fcpxml``.
        wav_path: the music WAV, as long as the timeline (referenced, not read: the caller
            writes it, in the same transaction).
        duration_s: the music's length (s); must be the timeline's, to a frame.
        bar_times_s: the start of every bar (s from the timeline's start), increasing.
        chords: for each bar, its chord name or names (str or sequence of str), or None.
        overwrite: replace an existing ``out_path``.
        name: the path errors name (default ``out_path``): the user's output, where
            ``out_path`` is the run's temporary for it.

    Returns:
        ``out_path`` as a Path.

    Raises:
        InputError: an unsupported suffix (``.edl`` included), an existing output without
            ``overwrite``, a missing WAV, a music length that is not the timeline's, or a
            timeline the chosen format's writer cannot express.
        ValueError: ``chords`` not one entry per bar, or bar times not increasing from 0.
    """
    otio = require_otio()
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix == ".edl":
        raise InputError(f"{out_path}: an EDL cannot hold the score (OpenTimelineIO's EDL writer "
                         "keeps one video track and drops audio tracks); write .otio, .xml or "
                         ".fcpxml")
    if suffix not in WRITTEN_SUFFIXES:
        raise InputError(f"{out_path}: a scored timeline ends in {', '.join(WRITTEN_SUFFIXES)}")
    adapter = adapter_for(otio, out_path)
    wav_path = Path(wav_path)
    check_output(out_path, overwrite)
    if any(b <= a for a, b in pairwise(bar_times_s)) or min(bar_times_s, default=0) < 0:
        raise ValueError("bar times must increase from 0")
    comments = _bar_comments(bar_times_s, chords)

    rate = timeline_rate(timeline)
    frames = timeline.duration().rescaled_to(rate).value
    if abs(duration_s - frames / rate) > 1 / rate:
        raise InputError(f"{name or out_path}: the music lasts {duration_s:.3f} s but the timeline "
                         f"{frames / rate:.3f} s (a score of another edit?)")
    scored = copy.deepcopy(timeline)
    track = otio.schema.Track(name=SCORE_TRACK, kind=otio.schema.TrackKind.Audio)
    track.append(_score_clip(otio, wav_path, rate, frames, duration_s, bar_times_s, comments))
    scored.tracks.append(track)
    with atomic_path(out_path) as tmp:
        try:
            otio.adapters.write_to_file(scored, str(tmp), adapter_name=adapter)
        except Exception as e:  # noqa: BLE001 (the adapters raise anything they cannot express)
            detail = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"{name or out_path}: the {suffix} writer cannot express this "
                             f"timeline ({detail}); write .otio, which holds any timeline") from None
    return out_path
