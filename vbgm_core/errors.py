"""Errors the core raises. The core never prints or exits; the CLI and plugins turn these
into one-line messages (CLI exit code = ``exit_code``)."""


class VbgmError(Exception):
    """Base class: the message is one line that names the problem and, where known, the file."""

    exit_code = 1


class InputError(VbgmError):
    """Bad user input: a file that is not what it should be, an option out of range."""

    exit_code = 2


class ModelLoadError(VbgmError):
    """A model, checkpoint or config that cannot be loaded."""

    exit_code = 3


class RenderError(VbgmError):
    """Synthesis or muxing failed, or a tool it needs is missing."""

    exit_code = 4


class Cancelled(VbgmError):
    """The caller's cancel flag was raised."""

    exit_code = 130
