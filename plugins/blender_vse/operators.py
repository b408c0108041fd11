"""Operators: Generate Score and Re-roll from Here (modal when invoked from the UI, blocking
when executed from a script or a test — the same begin/finish steps either way), cancel, and
refresh choices. The command is job.py's, the timeline work strips.py's."""

import json
import re
import shutil
from pathlib import Path

import bpy
from bpy.types import Operator

from . import edit_list, job, preferences, properties, strips

TIMER_S = 0.1


class _ScoreJobOperator:
    """A `vbgm score` job run by an operator: modal when invoked from the UI, blocking when
    executed from a script or a test. Subclasses start the job (:meth:`_start`, via
    :meth:`_prepare`) and lay its WAV on the timeline (:meth:`_insert`)."""

    _running = None  # the operator instance that owns the job: one job at a time, of either kind

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
        """Start the job; False (reported) on failure."""
        if _ScoreJobOperator._running is not None:
            self.report({"ERROR"}, "A score is already being generated (Esc cancels it)")
            return False
        self._scene_name = context.scene.name
        try:
            self._start(context)
        except (strips.StripError, job.JobError, OSError) as e:
            self.report({"ERROR"}, str(e))
            return False
        self._cancel_requested = False
        _ScoreJobOperator._running = self
        return True

    def _prepare(self, executable, edit, wav, midi, report, take, label, options, seed, **reroll):
        """The job for one take (not started: the caller writes ``edit`` first).

        Args:
            report: the core's JSON report to write beside the music (its tempo and bars
                are what Add Bar Markers reads).
            take: the take's number; label: the strip's name before " take<N>".
            options: :func:`properties.take_options` (kept on the strip).
            reroll: ``continue_from`` and ``keep_until`` for a re-roll.
        """
        kwargs = dict(options)
        self._music_gain_db = kwargs.pop("music_gain_db")
        self._duck = kwargs.get("duck_depth_db") is not None  # the CLI is told whether to duck
        argv = job.score_command(executable, edit, wav, midi, seed=seed, report=report, **kwargs,
                                 **reroll)
        self._job = job.ScoreJob(argv, outputs=(wav, midi, edit, report))  # removed on failure
        self._name = f"{label} take{take}"
        self._seed = int(seed)
        self._extra = {"vbgm_midi": str(midi), "vbgm_edit": str(edit), strips.REPORT_KEY: str(report),
                       "vbgm_seed": int(seed), "vbgm_label": label,
                       "vbgm_options": json.dumps(options)}

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
        _ScoreJobOperator._running = None
        state = context.window_manager.vbgm_job
        state.running, state.progress, state.status = False, 0.0, ""
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        _redraw_sequencers(context)
        result = self._job
        if result.state == "cancelled":
            self.report({"WARNING"}, f"{self.bl_label} cancelled")
            return {"CANCELLED"}
        if result.state != "done":
            self.report({"ERROR"}, f"vbgm score: {result.message}")
            return {"CANCELLED"}
        wav = result.outputs[0]
        scene = bpy.data.scenes.get(self._scene_name)
        if scene is None or scene.sequence_editor is None:
            self.report({"ERROR"}, f"Scene '{self._scene_name}' is gone; the score is in {wav}")
            return {"CANCELLED"}
        try:
            if self._duck:  # the core's curve is for the music at 0 dB
                level = [(t, db + self._music_gain_db) for t, db in job.gain_points(result.result)]
            else:
                level = [(0.0, self._music_gain_db)]
            sound = self._insert(scene, wav)
            strips.set_music_level(scene, sound, level, scene.render.fps / scene.render.fps_base)
        except (strips.StripError, job.JobError, RuntimeError) as e:
            self.report({"ERROR"}, f"{e}; the score is in {wav}")
            return {"CANCELLED"}
        self._after(scene)
        self.report({"INFO"}, self._done_message(sound, wav, result.result))
        return {"FINISHED"}

    def _after(self, scene):
        """The timeline work after the take is in (nothing by default)."""


class VBGM_OT_generate_score(_ScoreJobOperator, Operator):
    """Score the selected strips (or the scene's range) as one piece, as the viewer sees them,
    and add the music as one sound strip spanning them"""

    bl_idname = "vbgm.generate_score"
    bl_label = "Generate Score"
    bl_options = {"REGISTER", "UNDO"}

    def _start(self, context):
        """Build the edit list, pick the outputs and start `vbgm score`."""
        scene = context.scene
        settings = scene.vbgm
        plan = edit_list.build(scene, settings.source, settings.use_scene_range)
        executable = job.resolve_executable(preferences.vbgm_path(context))
        options = properties.take_options(settings)
        label = f"{plan.label} {options['genre'] or 'score'}"
        wav, midi, edit, report, take = job.take_paths(
            strips.output_folder(), f"{plan.label}_{options['genre'] or 'score'}")
        self._prepare(executable, edit, wav, midi, report, take, label, options, settings.seed)
        plan.write(edit)
        self._job.start()
        for warning in plan.warnings:
            self.report({"WARNING"}, warning)
        self._plan = plan
        # The levels as asked when the job started.
        self._originals = "MUTE" if settings.mix == "REPLACE" else settings.originals
        self._original_gain_db = settings.original_gain_db

    def _insert(self, scene, wav):
        return strips.add_score_strip(scene, self._plan, wav, self._name, extra=self._extra)

    def _after(self, scene):
        strips.set_original_level(scene, self._plan.originals, self._originals,
                                  self._original_gain_db)

    def _done_message(self, sound, wav, done):
        return f"Added '{sound.name}' on channel {sound.channel} ({Path(wav).name})"


def _take_selected(cls, context):
    """The operators that work on a score take: one must be selected."""
    if context.scene is None or strips.selected_take(context.scene) is None:
        cls.poll_message_set("Select a score take (a strip Generate Score made)")
        return False
    return True


class VBGM_OT_reroll_score(_ScoreJobOperator, Operator):
    """Keep the selected score take up to the playhead (rounded up to the next bar line) and
    compose the rest anew with the next seed, as a new take in the same place"""

    bl_idname = "vbgm.reroll_score"
    bl_label = "Re-roll from Here"
    bl_options = {"REGISTER", "UNDO"}
    poll = classmethod(_take_selected)

    def _start(self, context):
        """Re-score the take's edit list, continued from its MIDI up to the playhead."""
        scene = context.scene
        take = strips.selected_take(scene)
        if take is None:
            raise strips.StripError("Select a score take to re-roll (a strip Generate Score made)")
        keep_until = strips.playhead_in_take(scene, take)
        old_midi, old_edit = (Path(bpy.path.abspath(take[k])) for k in ("vbgm_midi", "vbgm_edit"))
        for path, what in ((old_midi, "MIDI"), (old_edit, "edit list")):
            if not path.is_file():
                raise strips.StripError(f"The {what} of '{take.name}' is missing: {path}")
        executable = job.resolve_executable(preferences.vbgm_path(context))
        # The take's own options; what it does not record (an older take) from the panel.
        options = properties.take_options(scene.vbgm)
        try:
            kept = json.loads(take.get("vbgm_options", "{}"))
        except ValueError:
            kept = {}
        options.update((k, v) for k, v in kept.items() if k in options)
        seed = strips.next_seed(scene, take, scene.vbgm.seed)
        label = take.get("vbgm_label") or re.sub(r" take\d+(\.\d+)?$", "", take.name)
        wav, midi, edit, report, number = job.take_paths(old_midi.parent, job.take_stem(old_midi))
        self._prepare(executable, edit, wav, midi, report, number, label, options, seed,
                      continue_from=old_midi, keep_until=keep_until)
        shutil.copyfile(old_edit, edit)  # the same edit: each take keeps its own edit list
        self._job.start()
        self._take_name, self._keep_until = take.name, keep_until

    def _insert(self, scene, wav):
        old = strips.top_strips(scene.sequence_editor).get(self._take_name)
        if old is None:
            raise strips.StripError(f"The take '{self._take_name}' is gone")
        return strips.add_take_like(scene, old, wav, self._name, extra=self._extra)

    def _done_message(self, sound, wav, done):
        kept = job.kept_s(done)
        kept = self._keep_until if kept is None else kept
        return (f"Re-rolled '{self._take_name}' from {kept:.2f} s with seed {self._seed}: "
                f"added '{sound.name}' on channel {sound.channel}")


class VBGM_OT_add_bar_markers(Operator):
    """Put timeline markers ("bar 1", "bar 2", ...) at the bar lines of the selected score take,
    replacing the ones added for this take before (other markers are left alone)"""

    bl_idname = "vbgm.add_bar_markers"
    bl_label = "Add Bar Markers"
    bl_options = {"REGISTER", "UNDO"}
    poll = classmethod(_take_selected)

    def execute(self, context):
        scene = context.scene
        take = strips.selected_take(scene)
        try:
            if take is None:
                raise strips.StripError("Select a score take (a strip Generate Score made)")
            lines = strips.bar_lines(take, strips.take_report(take),
                                     scene.render.fps / scene.render.fps_base)
        except strips.StripError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        strips.set_bar_markers(scene, take, lines)
        if lines:
            self.report({"INFO"}, f"Added {len(lines)} bar markers for '{take.name}' "
                        f"({lines[0][0]} to {lines[-1][0]})")
        else:
            self.report({"WARNING"}, f"No bar line in the visible part of '{take.name}'")
        return {"FINISHED"}


class VBGM_OT_cancel_score(Operator):
    """Stop the score being generated and remove its partial files"""

    bl_idname = "vbgm.cancel_score"
    bl_label = "Cancel Score"

    @classmethod
    def poll(cls, context):
        return _ScoreJobOperator._running is not None

    def execute(self, context):
        _ScoreJobOperator._running._cancel_requested = True  # the modal's next tick stops it
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
    op = _ScoreJobOperator._running
    if op is not None:
        op._job.cancel()
        _ScoreJobOperator._running = None


classes = (VBGM_OT_generate_score, VBGM_OT_reroll_score, VBGM_OT_add_bar_markers,
           VBGM_OT_cancel_score, VBGM_OT_refresh_choices)
