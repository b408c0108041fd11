"""Video rhythm analysis: frames, optical flow, visual beats, cuts → ``VideoRhythm`` (JSON).

See docs/VIDEO.md for the method, its units and the speed reference.
"""

from .edit import EditList, Segment, analyze_edit
from .rhythm import Bar, VideoRhythm, VisualBeat, analyze_frames, analyze_video

__all__ = ["Bar", "VideoRhythm", "VisualBeat", "analyze_frames", "analyze_video", "EditList",
           "Segment", "analyze_edit"]
