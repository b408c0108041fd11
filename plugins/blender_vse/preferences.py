"""Add-on preferences: how to reach the core (the `vbgm` command of the user's own Python)."""

import bpy
from bpy.props import StringProperty
from bpy.types import AddonPreferences

from . import job


def _addon(context):
    return context.preferences.addons.get(__package__)


def vbgm_path(context):
    """The configured `vbgm` command, or "" (then ``$VBGM_EXECUTABLE`` or PATH is used)."""
    addon = _addon(context)
    prefs = addon.preferences if addon is not None else None
    return bpy.path.abspath(prefs.vbgm_path) if prefs is not None and prefs.vbgm_path else ""


class VBGM_AP_preferences(AddonPreferences):
    bl_idname = __package__

    vbgm_path: StringProperty(
        name="vbgm Command", subtype="FILE_PATH", default="",
        description="The vbgm executable of the Python environment where vbgm is installed "
        f"(e.g. ~/venv/bin/vbgm). Blank: ${job.ENV_VAR}, then vbgm on PATH")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "vbgm_path")
        try:
            layout.label(text=f"Using: {job.resolve_executable(vbgm_path(context))}", icon="CHECKMARK")
        except job.JobError as e:
            layout.label(text=str(e), icon="ERROR")
        layout.operator("vbgm.refresh_choices", icon="FILE_REFRESH")


classes = (VBGM_AP_preferences,)
