"""Operators: Generate Score (modal when invoked from the UI, blocking when executed from a
script or a test — the same begin/finish steps either way), cancel, and refresh choices."""

from pathlib import Path

import bpy
from bpy.types import Operator

from . import edit_list, job, preferences, properties, strips

TIMER_S = 0.1


class VBGM_OT_generate_score(Operator):
    """Score the selected strips (or the scene's range) as one piece, as the viewer sees them,
    and add the music as one sound strip spanning them"""

    bl_idname = "vbgm.generate_score"
    bl_label = "Generate Score"
    bl_options = {"REGISTER", "UNDO"}

    _running = None  # the operator instance that owns the job: one job at a time

    def invoke(self, context, event):
        if not self._begin(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_S, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        """Blocking run: the path for scripts, background mode and tests."""
        if not self._begin(context):
            return {"CANCELLED"}
        self._job.wait(on_event=lambda _: self._show_progress(context))
        return self._finish(context)

    def modal(self, context, event):
        if event.type == "ESC" or self._cancel_requested:
            self._job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        self._job.poll()
        if not self._job.finished:
            self._show_progress(context)
            return {"RUNNING_MODAL"} if event.type == "ESC" else {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context)

    def _begin(self, context):
        """Build the edit list, pick the outputs and start `vbgm score`; False (reported) on failure."""
        if VBGM_OT_generate_score._running is not None:
            self.report({"ERROR"}, "A score is already being generated (Esc cancels it)")
            return False
        scene = context.scene
        settings = scene.vbgm
        try:
            plan = edit_list.build(scene, settings.source, settings.use_scene_range)
            executable = job.resolve_executable(preferences.vbgm_path(context))
            genre = None if settings.genre == "DEFAULT" else settings.genre
            wav, midi, edit, take = job.take_paths(strips.output_folder(),
                                                   f"{plan.label}_{genre or 'score'}")
            argv = job.score_command(
                executable, edit, wav, midi, genre=genre, instruments=sorted(settings.instruments),
                control=settings.control,
                tempo=settings.tempo_bpm if settings.tempo_mode == "BPM" else None, seed=settings.seed,
                key=settings.key, mode=settings.mode, loudness=settings.loudness,
                duck_depth_db=settings.duck_depth_db if settings.mix == "DUCK" else None)
            self._job = job.ScoreJob(argv, outputs=(wav, midi, edit))  # removes them on failure
            plan.write(edit)
            self._job.start()
        except (strips.StripError, job.JobError, OSError) as e:
            self.report({"ERROR"}, str(e))
            return False
        for warning in plan.warnings:
            self.report({"WARNING"}, warning)
        self._scene_name, self._plan = scene.name, plan
        # The levels as asked when the job started (the CLI was told whether to duck).
        self._mix, self._music_gain_db = settings.mix, settings.music_gain_db
        self._originals = "MUTE" if settings.mix == "REPLACE" else settings.originals
        self._original_gain_db = settings.original_gain_db
        self._name = f"{plan.label} {genre or 'score'} take{take}"
        self._cancel_requested = False
        VBGM_OT_generate_score._running = self
        return True

    def _show_progress(self, context):
        state = context.window_manager.vbgm_job
        state.running = True
        state.progress = self._job.progress
        state.status = f"{self._job.stage or 'starting'} {self._job.progress:.0%}"
        if context.workspace is not None:
            context.workspace.status_text_set(f"Generating score: {state.status} (Esc to cancel)")
        _redraw_sequencers(context)

    def _finish(self, context):
        """Insert the result or report why there is none; the job's files are already cleaned."""
        VBGM_OT_generate_score._running = None
        state = context.window_manager.vbgm_job
        state.running, state.progress, state.status = False, 0.0, ""
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw_sequencers(context)
        result = self._job
        if result.state == "cancelled":
            self.report({"WARNING"}, "Generate Score cancelled")
            return {"CANCELLED"}
        if result.state != "done":
            self.report({"ERROR"}, f"vbgm score: {result.message}")
            return {"CANCELLED"}
        wav, midi, edit = result.outputs
        scene = bpy.data.scenes.get(self._scene_name)
        if scene is None or scene.sequence_editor is None:
            self.report({"ERROR"}, f"Scene '{self._scene_name}' is gone; the score is in {wav}")
            return {"CANCELLED"}
        try:
            if self._mix == "DUCK":  # the core's curve is for the music at 0 dB
                level = [(t, db + self._music_gain_db) for t, db in job.gain_points(result.result)]
            else:
                level = [(0.0, self._music_gain_db)]
            sound = strips.add_score_strip(scene, self._plan, wav, self._name,
                                           extra={"vbgm_midi": str(midi), "vbgm_edit": str(edit)})
            strips.set_music_level(scene, sound, level, self._plan.fps)
        except (strips.StripError, job.JobError, RuntimeError) as e:
            self.report({"ERROR"}, f"{e}; the score is in {wav}")
            return {"CANCELLED"}
        strips.set_original_level(scene, self._plan.sounds, self._originals, self._original_gain_db)
        self.report({"INFO"}, f"Added '{sound.name}' on channel {sound.channel} ({Path(wav).name})")
        return {"FINISHED"}


class VBGM_OT_cancel_score(Operator):
    """Stop the score being generated and remove its partial files"""

    bl_idname = "vbgm.cancel_score"
    bl_label = "Cancel Score"

    @classmethod
    def poll(cls, context):
        return VBGM_OT_generate_score._running is not None

    def execute(self, context):
        VBGM_OT_generate_score._running._cancel_requested = True  # the modal's next tick stops it
        return {"FINISHED"}


class VBGM_OT_refresh_choices(Operator):
    """Ask the installed model again for its genres and instruments"""

    bl_idname = "vbgm.refresh_choices"
    bl_label = "Refresh Model Choices"

    def execute(self, context):
        properties.refresh_choices(context, wait=True)
        state, message = properties.choices_state()
        if state == "error":
            self.report({"ERROR"}, message)
            return {"CANCELLED"}
        return {"FINISHED"}


def _redraw_sequencers(context):
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def cancel_running_job():
    """Kill a job still running (add-on disabled or Blender quitting)."""
    op = VBGM_OT_generate_score._running
    if op is not None:
        op._job.cancel()
        VBGM_OT_generate_score._running = None


classes = (VBGM_OT_generate_score, VBGM_OT_cancel_score, VBGM_OT_refresh_choices)
