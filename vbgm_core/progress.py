"""One progress protocol: ``progress(stage, fraction)`` callbacks, shown to people as tqdm bars
on stderr and to programs (the Blender job, scripts) as JSON lines on stdout.

The stages of scoring are named here once, with their share of a whole job's time (measured:
generation dominates), so a caller drawing one bar needs no copy of them: in JSON-lines mode the
first line carries them, ``{"event": "start", "stages": {"analyze": 0.2, ...}}``. Then
``{"event": "progress", "stage": ..., "fraction": ...}`` lines, and at the end one
``{"event": "done", ...}`` or ``{"event": "error", "message": ..., "exit_code": ...}``.
"""

import json
import sys

# Stages of scoring a video, in order, with their share of the whole job.
STAGES = {"analyze": 0.2, "generate": 0.7, "render": 0.1}
MODES = ("bar", "jsonl", "none")


class Progress:
    """A ``progress(stage, fraction)`` callable.

    Args:
        mode: ``"bar"`` (tqdm bars on stderr, one per stage), ``"jsonl"`` (JSON lines on
            stdout), or ``"none"``.
        callback: also call this ``callback(stage, fraction)`` (the Python API's hook).
        stages: the stage weights announced in JSON-lines mode (default: scoring's).
    """

    def __init__(self, mode="bar", callback=None, stages=STAGES):
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} is not one of {MODES}")
        self.mode, self.callback, self.bars = mode, callback, {}
        if mode == "jsonl" and stages:
            self.event(event="start", stages=stages)

    @classmethod
    def of(cls, progress):
        """The Python API's ``progress`` argument (True: bars, False/None: nothing, or a
        callable) as a Progress."""
        if isinstance(progress, Progress):
            return progress
        if callable(progress):
            return cls("none", callback=progress)
        return cls("bar" if progress else "none")

    def __call__(self, stage, fraction):
        if self.callback is not None:
            self.callback(stage, fraction)
        if self.mode == "jsonl":
            self.event(event="progress", stage=stage, fraction=round(float(fraction), 4))
        elif self.mode == "bar":
            from tqdm import tqdm

            bar = self.bars.get(stage)
            if bar is None:
                bar = self.bars[stage] = tqdm(total=100, desc=f"{stage:>8}", unit="%",
                                              file=sys.stderr, leave=False,
                                              bar_format="{desc} {bar} {percentage:3.0f}%")
            bar.update(round(100 * fraction) - bar.n)
            if fraction >= 1:
                bar.close()

    def stage(self, name):
        """``fraction → None`` for one stage (for functions that report a single fraction)."""
        return lambda fraction: self(name, fraction)

    def event(self, **fields):
        """A JSON line on stdout (JSON-lines mode only)."""
        if self.mode == "jsonl":
            print(json.dumps(fields), flush=True)

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.bars = {}
