"""vbgm for Blender's Video Sequence Editor: "Generate Score" scores the selected strips (or the
scene's range) as one piece with the Controllable Music Transformer and adds the music as one
sound strip spanning them.

The core runs out of process (the user's own `vbgm` command), see job.py.
"""

# Read by Blender < 4.2 (legacy add-on); 4.2+ reads blender_manifest.toml instead.
bl_info = {
    "name": "vbgm: Generate Score",
    "author": "vbgm contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Sequencer > Sidebar > Score",
    "description": "Background music for the selected strips or the whole edit (Controllable Music Transformer)",
    "category": "Sequencer",
}

import bpy  # noqa: E402

from . import operators, preferences, properties, ui  # noqa: E402

_modules = (preferences, properties, operators, ui)


def register():
    for module in _modules:
        for cls in module.classes:
            bpy.utils.register_class(cls)
    properties.register_properties()


def unregister():
    operators.cancel_running_job()
    properties.unregister_properties()
    for module in reversed(_modules):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
