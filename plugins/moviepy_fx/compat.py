"""The few places where MoviePy 1.x and 2.x differ, behind one set of functions.

MoviePy 2 renamed the out-of-place setters (``set_audio`` → ``with_audio``, ``volumex`` →
``with_volume_scaled``) and a clip's frame callable (``make_frame`` → ``frame_function``);
the module paths used here (``moviepy.audio.AudioClip``, ``moviepy.video.VideoClip``) are the
same in both.
"""

import numpy as np
from moviepy.audio.AudioClip import AudioArrayClip, AudioClip, CompositeAudioClip
from moviepy.video.VideoClip import VideoClip

try:  # MoviePy 2
    from moviepy import Effect
except ImportError:  # MoviePy 1.x has no Effect class; CMTSoundtrack is then a plain dataclass
    Effect = None

# The frame callable a VideoFileClip sets in its constructor: while a clip still has it, its
# frames are the file's frames (a subclip, speed change or composite replaces it).
_FILE_FRAME_FUNCTION = "VideoFileClip.__init__.<locals>.<lambda>"


def is_audio_clip(clip):
    return isinstance(clip, AudioClip)


def is_video_clip(clip):
    return isinstance(clip, VideoClip)


def frame_function(clip):
    """The clip's frame callable (``frame_function`` in 2.x, ``make_frame`` in 1.x)."""
    return getattr(clip, "frame_function", None) or getattr(clip, "make_frame", None)


def unchanged_file(clip):
    """The file behind a clip whose frames are still exactly the file's frames, else None."""
    function = frame_function(clip)
    filename = getattr(clip, "filename", None)
    if filename and getattr(function, "__qualname__", "") == _FILE_FRAME_FUNCTION:
        return filename
    return None


def audio_array_clip(audio, sample_rate):
    """An audio clip playing ``audio`` (float [n, channels])."""
    return AudioArrayClip(audio, fps=sample_rate)


def scaled(audio_clip, gain):
    """``audio_clip`` at ``gain`` times its volume."""
    if hasattr(audio_clip, "with_volume_scaled"):
        return audio_clip.with_volume_scaled(gain)
    from moviepy.audio.fx.volumex import volumex

    return audio_clip.fx(volumex, gain)


def mixed(tracks, duration):
    """The sum of several audio clips, cut to ``duration`` seconds."""
    mix = CompositeAudioClip(tracks)
    return mix.with_duration(duration) if hasattr(mix, "with_duration") else \
        mix.set_duration(duration)


def with_audio(clip, audio_clip):
    """A copy of ``clip`` with ``audio_clip`` as its audio."""
    if hasattr(clip, "with_audio"):
        return clip.with_audio(audio_clip)
    return clip.set_audio(audio_clip)


def mono_samples(audio_clip, fps):
    """An audio clip's samples at ``fps``, averaged to mono float32 ``[n]``.

    Read chunk by chunk: MoviePy 1.0.3's one-call ``to_soundarray`` stacks its chunks with
    ``np.vstack(generator)``, an error under NumPy 2, and mono halves what is held in memory.
    A chunk must fit a file reader's buffer (200,000 samples by default; a larger request
    comes back as silence), so chunks are one second.
    """
    chunks = [np.asarray(c, dtype=np.float32).reshape(len(c), -1).mean(axis=1)
              for c in audio_clip.iter_chunks(fps=fps, chunk_duration=1.0)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
