"""The sequencer side: which movie strip to score, which part of it, and where the score goes.

Blender 4.4 added ``sequence_editor.strips`` and 5.0 removed ``sequences``; the helpers here
are the only place that knows both spellings.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy

MAX_CHANNEL = 128
SCORE_FOLDER = "vbgm_scores"  # beside the .blend
SOURCE_KEY = "vbgm_source"  # custom property on a sound strip: the movie strip it scores


class StripError(Exception):
    """The scene offers nothing to score; the message is one line for a Blender report."""


@dataclass
class Span:
    """The part of a movie strip to score.

    Attributes:
        video: absolute path of the movie file.
        frame_start, frame_end: timeline frames, end exclusive.
        start_s, end_s: the same part in seconds of the source file.
        warning: a note for the user ("" when none).
    """

    video: Path
    frame_start: int
    frame_end: int
    start_s: float
    end_s: float
    warning: str = ""

    @property
    def n_frames(self):
        return self.frame_end - self.frame_start


def top_strips(editor):
    """The editor's top-level strip collection (``strips`` ≥ 4.4, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor):
    """Every strip, inside meta strips too (``strips_all`` ≥ 4.4, ``sequences_all`` before)."""
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def visible_frames(strip):
    """Timeline frames [start, end) a strip shows after its handles (trims) are applied."""
    if hasattr(strip, "frame_final_start"):
        return int(strip.frame_final_start), int(strip.frame_final_end)
    # Where the frame_final_* names are gone: content start plus the trims.
    start = strip.frame_start + strip.frame_offset_start
    return int(round(start)), int(round(strip.frame_start + strip.frame_duration - strip.frame_offset_end))


def find_movie_strip(scene):
    """The movie strip to score: the active one if it is a selected movie, else the only
    selected movie strip.

    Raises:
        StripError: none, or several without an active one, is selected.
    """
    editor = scene.sequence_editor
    if editor is None:
        raise StripError("No movie strip selected: this scene has no sequencer strips")
    active = editor.active_strip
    if active is not None and active.type == "MOVIE" and active.select:
        return active
    movies = [s for s in top_strips(editor) if s.type == "MOVIE" and s.select]
    if not movies:
        raise StripError("No movie strip selected: select the movie strip to score")
    if len(movies) > 1:
        raise StripError(f"{len(movies)} movie strips selected: click the one to score to make it active")
    return movies[0]


def scored_span(scene, strip, use_scene_range=True):
    """The visible part of ``strip`` (optionally cut to the scene's frame range), in frames
    and in source seconds.

    A movie strip without retiming shows one source frame per timeline frame, so source
    time = content frame / the movie's own fps.

    Raises:
        StripError: the file is missing, or nothing of the strip is visible.
    """
    video = Path(bpy.path.abspath(strip.filepath, library=scene.library))
    if not video.is_file():
        raise StripError(f"Movie file of strip '{strip.name}' is missing: {video}")
    start, end = visible_frames(strip)
    if use_scene_range:
        start, end = max(start, scene.frame_start), min(end, scene.frame_end + 1)
    if end <= start:
        raise StripError(f"Strip '{strip.name}' has no visible frames inside the scene's frame range "
                         f"{scene.frame_start}-{scene.frame_end}")
    scene_fps = scene.render.fps / scene.render.fps_base
    movie_fps = strip.fps or scene_fps
    warning = ""
    if abs(movie_fps - scene_fps) > 1e-3 * scene_fps:
        warning = (f"'{strip.name}' is {movie_fps:g} fps but the scene is {scene_fps:g} fps: "
                   "the music follows the source's timing; set the scene to the movie's frame rate")
    content0 = strip.frame_start  # timeline frame of the file's first frame
    return Span(video, start, end, (start - content0) / movie_fps, (end - content0) / movie_fps, warning)


def free_channel(scene, frame_start, frame_end, near):
    """The channel closest to ``near`` (below first, then above) with nothing in
    [frame_start, frame_end).

    Raises:
        StripError: every channel is taken there.
    """
    busy = set()
    for s in top_strips(scene.sequence_editor):
        s0, s1 = visible_frames(s)
        if s0 < frame_end and frame_start < s1:
            busy.add(s.channel)
    below = range(near - 1, 0, -1)
    above = range(near + 1, MAX_CHANNEL + 1)
    for channel in (*below, *above):
        if channel not in busy:
            return channel
    raise StripError(f"No free channel for the score between frames {frame_start} and {frame_end}")


def output_folder():
    """Where scores are written: ``vbgm_scores/`` beside the saved .blend, else a temp dir."""
    if bpy.data.filepath:
        folder = Path(bpy.path.abspath("//")) / SCORE_FOLDER
    else:
        folder = Path(tempfile.gettempdir()) / SCORE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def add_score_strip(scene, movie, span, wav, name, extra=None):
    """Insert ``wav`` as a sound strip aligned with ``span`` next to ``movie``; earlier takes
    for the same movie strip are muted, not removed.

    Args:
        scene: the scene whose sequencer gets the strip.
        movie: the scored movie strip.
        span: the scored :class:`Span`.
        wav: the score's WAV file.
        name: strip name.
        extra: custom properties to store on the strip (str/int/float values).

    Returns:
        The new sound strip.
    """
    editor = scene.sequence_editor
    channel = free_channel(scene, span.frame_start, span.frame_end, movie.channel)
    filepath = str(wav)
    if bpy.data.filepath:
        try:  # relative to the .blend, so the project folder can move
            filepath = bpy.path.relpath(filepath)
        except ValueError:  # another drive on Windows
            pass
    for s in top_strips(editor):
        if s.type == "SOUND" and s.get(SOURCE_KEY) == movie.name:
            s.mute = True
    sound = top_strips(editor).new_sound(name, filepath, channel, span.frame_start)
    # Rounding can make the audio a frame longer than the picture; never shorter by more.
    sound.frame_final_duration = min(span.n_frames, sound.frame_duration)
    sound[SOURCE_KEY] = movie.name
    for key, value in (extra or {}).items():
        sound[key] = value
    return sound
