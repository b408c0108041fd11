"""Errors the core raises. The core never prints or exits; the CLI and plugins turn these
into one-line messages (CLI exit code = ``exit_code``)."""


class VbgmError(Exception):
    """Base class: the message is one line that names the problem and, where known, the file."""

    exit_code = 1


class InputError(VbgmError):
    """Bad user input: a file that is not what it should be, an option out of range."""

    exit_code = 2


def finite_number(value, name, what="number"):
    """``value`` as a finite float, else an InputError in the words every number check uses:
    "NAME must be a WHAT" / "NAME must be a finite WHAT, not VALUE"."""
    import math

    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{name} must be a {what}, not {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite {what}, not {value!r}")
    return number


class ModelLoadError(VbgmError):
    """A model, checkpoint or config that cannot be loaded."""

    exit_code = 3


class RenderError(VbgmError):
    """Synthesis or muxing failed, or a tool it needs is missing."""

    exit_code = 4


class Cancelled(VbgmError):
    """The caller's cancel flag was raised."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) asked the process to stop (``files.cancel_on_signals``).

    A KeyboardInterrupt, so that everything that cleans up after Ctrl-C (``finally`` blocks,
    process pools, progress bars) does the same here, and no ``except Exception`` swallows it.
    Exit code: 128 + the signal's number, as a shell reports a process ended by it.
    """

    def __init__(self, signum):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum
