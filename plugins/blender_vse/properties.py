"""Per-scene score settings (``scene.vbgm``) and the running job's display state
(``window_manager.vbgm_job``, never saved).

Genre and instrument choices come from the installed model (`vbgm genres`, `vbgm
instruments`), read once in a background thread so that drawing never waits on a subprocess.
"""

import threading

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import PropertyGroup

from . import job, preferences

# Blender keeps only pointers to enum item strings: these lists must outlive the callbacks.
_choices = {"genres": [], "instruments": [], "error": "", "loading": False}
_NO_GENRES = [("DEFAULT", "Model default", "The model's default genre (choices not loaded yet)")]


def load_choices(executable):
    """Ask the model for its genres and instruments (blocking); errors land in ``choices_error()``."""
    try:
        genres, instruments = job.list_names(executable, "genres"), job.list_names(executable, "instruments")
    except job.JobError as e:
        _choices.update(error=str(e), loading=False)
        return
    _choices.update(
        genres=[(g, g.replace("_", " ").title(), f"Genre '{g}'") for g in genres],
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
    return _choices["genres"] or _NO_GENRES


def _instrument_items(self, context):
    return _choices["instruments"]


class VBGM_PG_settings(PropertyGroup):
    """What the next "Generate Score" asks the model for."""

    genre: EnumProperty(name="Genre", description="Genre the music is conditioned on", items=_genre_items)
    instruments: EnumProperty(name="Instruments", items=_instrument_items, options={"ENUM_FLAG"},
                              description="Instruments to play (none selected = the model's default)")
    control: FloatProperty(name="Control (C)", default=0.7, min=0.0, max=1.0, subtype="FACTOR",
                           description="How closely the music follows the video's rhythm "
                           "(0 = free, 1 = every bar matches the motion)")
    tempo_mode: EnumProperty(name="Tempo", default="AUTO", items=[
        ("AUTO", "Auto", "Tempo from the video's visual beats"),
        ("BPM", "BPM", "A fixed tempo")])
    tempo_bpm: FloatProperty(name="BPM", default=120.0, min=30.0, max=300.0, description="Fixed tempo")
    seed: IntProperty(name="Seed", default=0, min=0, description="Same seed and settings = same music")
    use_scene_range: BoolProperty(name="Scene Range Only", default=True,
                                  description="Score only the part of the strip inside the scene's frame range")


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
    _choices.update(genres=[], instruments=[], error="", loading=False)
