"""The Sequencer sidebar panel (tab "Score")."""

from bpy.types import Panel

from . import edit_list, properties, strips


class VBGM_PT_score(Panel):
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Score"
    bl_label = "Generate Score"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.vbgm

        layout.prop(settings, "source")
        if settings.source == "SELECTED":
            layout.prop(settings, "use_scene_range")
        self._draw_source(context, layout.box())

        state, message = properties.choices_state()
        if state == "loading":
            layout.label(text="Asking the model for its genres…", icon="TIME")
        elif state == "error":
            col = layout.column(align=True)
            col.label(text=message, icon="ERROR")
            col.operator("vbgm.refresh_choices", icon="FILE_REFRESH")
        layout.prop(settings, "genre")
        if state == "ready":  # instrument toggles exist once the model has answered
            col = layout.column(heading="Instruments", align=True)
            col.prop(settings, "instruments", expand=True)
        layout.prop(settings, "control", slider=True)
        row = layout.row(align=True)
        row.prop(settings, "tempo_mode", expand=True)
        if settings.tempo_mode == "BPM":
            layout.prop(settings, "tempo_bpm")
        layout.prop(settings, "seed")
        row = layout.row(align=True)
        row.prop(settings, "key")
        row.prop(settings, "mode", text="")
        layout.prop(settings, "min_density")
        layout.prop(settings, "repetition")
        layout.prop(settings, "loudness")

        col = layout.column(heading="Sound")
        col.prop(settings, "mix")
        col.prop(settings, "music_gain_db")
        if settings.mix == "DUCK":
            col.prop(settings, "duck_depth_db")
            col.prop(settings, "duck_attack_s")
            col.prop(settings, "duck_release_s")
        if settings.mix != "REPLACE":  # Replace mutes the originals
            col.prop(settings, "originals")
            if settings.originals == "LOWER":
                col.prop(settings, "original_gain_db")

        job_state = context.window_manager.vbgm_job
        if job_state.running:
            row = layout.row(align=True)
            if hasattr(row, "progress"):  # UILayout.progress: Blender 4.0+
                row.progress(factor=job_state.progress, type="BAR", text=job_state.status)
            else:
                row.label(text=job_state.status)
            row.operator("vbgm.cancel_score", text="", icon="CANCEL")
        else:
            layout.operator("vbgm.generate_score", icon="PLAY_SOUND")
            # Enabled when the active (or the one selected) strip is a take; keeps it up to
            # the playhead and re-rolls the rest.
            layout.operator("vbgm.reroll_score", icon="FILE_REFRESH")
            # Also a take's: timeline markers at its bar lines, to cut on the beat.
            layout.operator("vbgm.add_bar_markers", icon="MARKER_HLT")

    @staticmethod
    def _draw_source(context, box):
        settings = context.scene.vbgm
        try:
            plan = edit_list.build(context.scene, settings.source, settings.use_scene_range)
        except strips.StripError as e:
            box.label(text=str(e), icon="INFO")
            return
        n = len(plan.segments)
        box.label(text=f"{plan.label}: {n} segment{'s' * (n != 1)}", icon="SEQ_STRIP_DUPLICATE")
        box.label(text=f"Frames {plan.frame_start}-{plan.frame_end - 1} ({plan.duration_s:.1f} s)")
        for warning in plan.warnings:
            box.label(text=warning, icon="ERROR")


classes = (VBGM_PT_score,)
