"""Editors' timelines (OpenTimelineIO): read as what the viewer sees, written back with the
score on a new audio track. Needs the ``timeline`` extra (``pip install 'vbgm[timeline]'``);
importing this package does not, so the CLI can tell a timeline from a video without it."""

from .read import TIMELINE_SUFFIXES, LoadedTimeline, is_timeline, load_timeline
from .write import write_scored_timeline

__all__ = ["TIMELINE_SUFFIXES", "LoadedTimeline", "is_timeline", "load_timeline",
           "write_scored_timeline"]
