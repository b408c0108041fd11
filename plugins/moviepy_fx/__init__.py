"""vbgm for MoviePy: give an edited clip a soundtrack composed for it.

MoviePy 2::

    from moviepy import VideoFileClip
    from vbgm_moviepy import CMTSoundtrack
    clip = VideoFileClip("in.mp4").subclipped(2, 12)
    clip.with_effects([CMTSoundtrack(genre="pop", seed=1)]).write_videofile("out.mp4")

MoviePy 1.x::

    from moviepy.editor import VideoFileClip
    from vbgm_moviepy import cmt_soundtrack
    clip = VideoFileClip("in.mp4").subclip(2, 12)
    clip.fx(cmt_soundtrack, genre="pop").write_videofile("out.mp4")

See docs/MOVIEPY.md.
"""

from .cache import cache_dir
from .effect import CMTSoundtrack, SoundtrackInfo, cmt_soundtrack

__all__ = ["CMTSoundtrack", "SoundtrackInfo", "cache_dir", "cmt_soundtrack"]
