"""Per-scene score settings (``scene.vbgm``) and the running job's display state
(``window_manager.vbgm_job``, never saved).

Genre and instrument choices come from the installed model (`vbgm genres`, `vbgm
instruments`), read once in a background thread so that drawing never waits on a subprocess.
"""

import threading

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import PropertyGroup

from . import job, preferences

# Blender keeps only pointers to enum item strings: these lists must outlive the callbacks.
_choices = {"genres": [], "genre_items": [], "instruments": [], "error": "", "loading": False}
# The first genre item, always there: no genre asked for, so the core picks its own default
# (one place for defaults). Numbered 0, the property's default: a dynamic enum stores a number,
# and the model's genres (1, 2, ...) arriving later must not change what a new scene asks for.
_DEFAULT_GENRE = ("DEFAULT", "Model Default", "The model's own default genre", "NONE", 0)
_NO_GENRES = [_DEFAULT_GENRE]


def load_choices(executable):
    """Ask the model for its genres and instruments (blocking); errors land in ``choices_error()``."""
    try:
        genres, instruments = job.list_names(executable, "genres"), job.list_names(executable, "instruments")
    except job.JobError as e:
        _choices.update(error=str(e), loading=False)
        return
    genres = [(g, g.replace("_", " ").title(), f"Genre '{g}'", "NONE", i) for i, g in enumerate(genres, 1)]
    _choices.update(
        genres=genres, genre_items=[_DEFAULT_GENRE] + genres,
        instruments=[(n, n.title(), f"Play the {n} part", "NONE", 1 << i) for i, n in enumerate(instruments)],
        error="", loading=False)


def refresh_choices(context, wait=False):
    """(Re)load the choices for the configured `vbgm`, in the background unless ``wait``."""
    try:
        executable = job.resolve_executable(preferences.vbgm_path(context))
    except job.JobError as e:
        _choices["error"] = str(e)
        return
    _choices.update(loading=True, error="")
    if wait:
        load_choices(executable)
    else:
        threading.Thread(target=load_choices, args=(executable,), daemon=True).start()


def choices_state():
    """("loading" | "error" | "ready" | "empty", error message)."""
    if _choices["loading"]:
        return "loading", ""
    if _choices["error"]:
        return "error", _choices["error"]
    return ("ready" if _choices["genres"] else "empty"), ""


def _genre_items(self, context):
    if not _choices["genres"] and not _choices["loading"] and not _choices["error"]:
        refresh_choices(context)
    return _choices["genre_items"] or _NO_GENRES


def _instrument_items(self, context):
    return _choices["instruments"]


class VBGM_PG_settings(PropertyGroup):
    """What the next "Generate Score" asks the model for."""

    genre: EnumProperty(name="Genre", description="Genre the music is conditioned on", items=_genre_items,
                        default=0)
    instruments: EnumProperty(name="Instruments", items=_instrument_items, options={"ENUM_FLAG"},
                              description="Instruments to play (none selected = the model's default)")
    control: FloatProperty(name="Control (C)", default=0.7, min=0.0, max=1.0, subtype="FACTOR",
                           description="How closely the music follows the video's rhythm "
                           "(0 = free, 1 = every bar matches the motion)")
    tempo_mode: EnumProperty(name="Tempo", default="AUTO", items=[
        ("AUTO", "Auto", "Tempo from the video's visual beats"),
        ("BPM", "BPM", "A fixed tempo")])
    tempo_bpm: FloatProperty(name="BPM", default=120.0, min=30.0, max=300.0, description="Fixed tempo")
    seed: IntProperty(name="Seed", default=0, description="Same seed and settings = same music")
    key: EnumProperty(name="Key", default="auto", items=[
        ("auto", "Auto", "Drawn from the genre's songs and the seed")] + [
        (k, k, f"{k} as the tonic") for k in
        ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")])
    mode: EnumProperty(name="Mode", default="auto", items=[
        ("auto", "Auto", "Major or minor, drawn from the genre's songs and the seed"),
        ("major", "Major", ""), ("minor", "Minor", "")])
    min_density: IntProperty(name="Min Density", default=3, min=0, max=16,
                             description="Fewest notes starting in any bar, so that calm footage "
                             "gets calm music rather than silence (0 = as sparse as the video says)")
    repetition: FloatProperty(name="Repetition", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                              description="How much the music repeats itself: the drums keep a "
                              "groove and phrases come back when the picture does (lower for "
                              "more variety)")
    loudness: FloatProperty(name="Loudness (LUFS)", default=-14.0, min=-40.0, max=-5.0,
                            description="Integrated loudness of the music (-14 web video, "
                            "-23 broadcast)")
    source: EnumProperty(name="Score", default="SELECTED", items=[
        ("SELECTED", "Selected Strips", "The selected movie and meta strips as one piece, from the "
         "first one's start to the last one's end"),
        ("SCENE", "Scene Range", "Everything the scene shows between its start and end frames")])
    use_scene_range: BoolProperty(name="Scene Range Only", default=True,
                                  description="Score only the part of the selected strips inside the "
                                  "scene's frame range")
    mix: EnumProperty(name="Mix", default="MIX", items=[
        ("REPLACE", "Replace", "The music replaces the movies' own sound (mutes it)"),
        ("MIX", "Mix", "The music plays with the movies' own sound"),
        ("DUCK", "Duck", "Mix, with the music lowered wherever someone speaks (volume keyframes)")])
    music_gain_db: FloatProperty(name="Music Gain", default=0.0, min=-60.0, max=12.0,
                                 description="Level of the music strip, dB")
    duck_depth_db: FloatProperty(name="Duck Depth", default=-12.0, min=-60.0, max=0.0,
                                 description="How far the music drops under speech, dB")
    duck_attack_s: FloatProperty(name="Duck Attack", default=0.3, min=0.0, max=10.0, unit="TIME_ABSOLUTE",
                                 description="Seconds the music takes to drop as speech starts")
    duck_release_s: FloatProperty(name="Duck Release", default=0.8, min=0.0, max=10.0,
                                  unit="TIME_ABSOLUTE",
                                  description="Seconds the music takes to come back after speech")
    originals: EnumProperty(name="Original Sound", default="LOWER", items=[
        ("KEEP", "Keep", "Leave the movies' sound strips as they are"),
        ("LOWER", "Lower", "Set the movies' sound strips to the Original Gain"),
        ("MUTE", "Mute", "Mute the movies' sound strips")])
    original_gain_db: FloatProperty(name="Original Gain", default=-10.5, min=-60.0, max=0.0,
                                    description="Level of the movies' own sound when lowered, dB "
                                    "(relative to its level before vbgm changed it)")


def take_options(settings):
    """What a take is made with, from the panel: :func:`job.score_command`'s keyword arguments
    (all but the paths and the seed) and ``music_gain_db``. JSON-ready: a take keeps them
    (custom property ``vbgm_options``) so that a re-roll asks the model the same."""
    return {"genre": None if settings.genre == "DEFAULT" else settings.genre,
            "instruments": sorted(settings.instruments), "control": settings.control,
            "tempo": settings.tempo_bpm if settings.tempo_mode == "BPM" else None,
            "key": settings.key, "mode": settings.mode, "min_density": settings.min_density,
            "repetition": settings.repetition,
            "loudness": settings.loudness,
            "duck_depth_db": settings.duck_depth_db if settings.mix == "DUCK" else None,
            "duck_attack_s": settings.duck_attack_s if settings.mix == "DUCK" else None,
            "duck_release_s": settings.duck_release_s if settings.mix == "DUCK" else None,
            "music_gain_db": settings.music_gain_db}


class VBGM_PG_job(PropertyGroup):
    """What the panel shows while a score is being generated."""

    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")


classes = (VBGM_PG_settings, VBGM_PG_job)


def register_properties():
    bpy.types.Scene.vbgm = PointerProperty(type=VBGM_PG_settings)
    bpy.types.WindowManager.vbgm_job = PointerProperty(type=VBGM_PG_job)


def unregister_properties():
    del bpy.types.WindowManager.vbgm_job
    del bpy.types.Scene.vbgm
    _choices.update(genres=[], genre_items=[], instruments=[], error="", loading=False)
