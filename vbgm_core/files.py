"""Outputs that can never destroy a user's file, and that land together or not at all.

A run declares every output up front in one ``Outputs`` transaction, before any slow work:
each is checked against every input (same file by inode, not by name) and against the other
outputs, its extension and folder are checked, and an existing one is refused unless
``overwrite``. The work writes to temporaries (``Outputs.temp``) in a hidden staging folder
beside each output; leaving the ``with`` block installs them all (the final step never
replaces a file that appeared meanwhile, unless ``overwrite``), or, on any exception
(``Terminated`` from SIGTERM and Ctrl-C included), removes every temporary.

``--overwrite`` may replace files at the output paths the user named (never an input) and
folders that are empty or hold only what vbgm wrote there (listed in their ``MARKER`` file).
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, Terminated

# Every folder vbgm writes holds this file: the list of the files vbgm put there. With
# --overwrite, a folder is replaced only when it holds nothing else.
MARKER = ".vbgm-output"
_STAGING = (".vbgm-", ".tmp")  # hidden staging folders: prefix, suffix
# Errors of the place being written to, not of the program: reported as one line, exit 2.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
# What a path may hold beyond the output's own name (bytes): the staging folder beside it
# ("/.vbgm-XXXXXXXX.tmp/"); what ``atomic_path`` adds to a name (".", ".XXXXXXXX.tmp"), up to
# the longest name allowed; in a folder output, a second staging folder (the writer's
# ``atomic_dir`` inside the run's) and the files vbgm names there (up to 64 bytes) with their
# temporaries.
_STAGING_ROOM = len("/" + _STAGING[0] + "XXXXXXXX" + _STAGING[1] + "/")
_ATOMIC_ROOM = len("..XXXXXXXX.tmp")
_FOLDER_ROOM = _STAGING_ROOM + 1 + 64 + _ATOMIC_ROOM


def check_input_file(path, what="input"):
    """``path`` as a Path when it is an existing, readable regular file; else one clear line.

    Called before any slow work (the model loads in seconds), so a typo costs nothing.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise InputError(f"{path}: no such {what} file")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not a {what} file")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file (a {what} file is needed)")
    except OSError as e:  # a name or path too long, ...: the system's answer, not a "no"
        raise InputError(f"{_short(path)}: cannot be read ({e.strerror})") from None
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied)")
    return path


def _short(path, keep=120):
    """``path`` for a message: whole, or its start and end when it is very long."""
    text = os.fspath(path)
    return text if len(text) <= keep else f"{text[:60]}...{text[-(keep - 63):]}"


def _limits(folder):
    """(longest name, longest path) in bytes on the file system of ``folder`` (or of the
    nearest folder above it that can be asked)."""
    for f in (Path(folder), *Path(folder).parents):
        try:
            return os.pathconf(f, "PC_NAME_MAX"), os.pathconf(f, "PC_PATH_MAX")
        except (OSError, ValueError):
            continue
    return 255, 4096


def check_output_name(path, what="output", folder=False, staged=True):
    """The checks of an output's name that ask nothing of the file system, made before
    anything looks at it (the system answers a too-long name with an error, not a "no"):

    - a file output does not end in "/" (``o.mp4/`` names a folder, though ``Path`` reads it
      as ``o.mp4``);
    - its name fits the file system (vbgm's temporaries keep the output's name in a staging
      folder, and ``atomic_path`` shortens its own to fit);
    - its absolute path, with the temporaries (``staged``: in a staging folder, as
      ``Outputs`` writes it; else beside it, as ``atomic_path`` does, for a temporary already
      staged) and for a folder the files vbgm writes in it, stays under the system's longest
      path (ffmpeg gets absolute paths). A path in a staging folder is a temporary whose
      output was checked with this room already: checked again (a writer's own check, an
      ``atomic_dir`` inside the run's staging folder), it passes whenever the output passed.
    """
    text = os.fspath(path)
    if not folder and os.path.basename(text) in ("", ".", ".."):
        raise InputError(f"{_short(text)}: names a folder; the {what} is a file, give its "
                         "name (without a trailing '/')")
    absolute = os.path.abspath(text)
    parent, name = os.path.split(absolute)
    name_max, path_max = _limits(parent)
    for part in (*Path(parent).parts[1:], name):
        if len(os.fsencode(part)) > name_max:
            which = "name" if part is name else f"folder name {_short(part, 40)!r}"
            raise InputError(f"{_short(text)}: the {which} is {len(os.fsencode(part))} bytes "
                             f"long; the file system allows {name_max}")
    name_bytes = len(os.fsencode(name))
    staged = staged and not _is_staging(parent)
    room = _STAGING_ROOM if staged else 1   # the staging folder, or a "/"
    longest = len(os.fsencode(parent)) + room + min(name_max, name_bytes + _ATOMIC_ROOM)
    if folder:
        longest = len(os.fsencode(parent)) + room + name_bytes + _FOLDER_ROOM
    if longest >= path_max:
        raise InputError(f"{_short(text)}: the path is too long ({len(os.fsencode(absolute))} "
                         f"bytes, {longest} with the temporaries vbgm writes beside it; the "
                         f"system allows {path_max - 1}): choose a shorter folder or name")
    return text


def check_soundfont(path):
    """``path`` as a Path when it is a SoundFont FluidSynth will open (its RIFF header, and the
    file as long as the header says: FluidSynth refuses a truncated one)."""
    path = check_input_file(path, "SoundFont")
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] not in (b"sfbk", b"DLS "):
        raise InputError(f"{path}: not a SoundFont (.sf2, .sf3 or .dls)")
    if int.from_bytes(head[4:8], "little") + 8 != path.stat().st_size:
        raise InputError(f"{path}: damaged SoundFont (truncated, or not as long as its header "
                         "says)")
    return path


def same_file(a, b):
    """True when ``a`` and ``b`` name the same file or folder (by inode where both exist)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path, folder):
    """True when ``path`` lies (strictly) inside ``folder``."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output(path, overwrite=False):
    """Refuse to clobber an existing output unless asked, and fail early on a missing or
    unwritable folder. (``Outputs`` adds the checks against inputs and other outputs.)"""
    path = Path(check_output_name(path, staged=False))
    if path.is_dir():
        raise InputError(f"{path}: is a folder; a file name is needed here")
    if path.is_symlink() and not path.exists():
        # Installing beside it would fail at the very end (the name is taken); writing through
        # it would put the output wherever the link points.
        if not overwrite:
            raise InputError(f"{path}: is a dangling symbolic link (to {os.readlink(path)}); "
                             "remove it, or use --overwrite to replace the link itself (its "
                             "target is never written)")
    elif path.exists() and not overwrite:
        raise InputError(f"{path}: output exists (use --overwrite to replace it)")
    _check_writable_folder(path)
    return path


def _is_staging(folder):
    """True when ``folder`` is one of ``Outputs``' staging folders (a name mkdtemp made)."""
    name = os.path.basename(folder)
    return (name.startswith(_STAGING[0]) and name.endswith(_STAGING[1])
            and len(name) == len(_STAGING[0]) + 8 + len(_STAGING[1]))


def _check_writable_folder(path):
    """The folder of ``path`` exists and a file can really be made there (``os.access`` says
    yes to root on a read-only mount or an immutable folder, so try it)."""
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"{path}: output folder {parent} does not exist")
    try:
        probe = tempfile.mkdtemp(prefix=_STAGING[0], suffix=_STAGING[1], dir=parent)
        os.rmdir(probe)
    except OSError as e:
        raise InputError(f"{path}: output folder {parent} is not writable ({e.strerror})") from None


def _files_under(folder):
    """Relative POSIX paths of every non-folder entry under ``folder`` (links not followed)."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(found)


def foreign_files(folder):
    """Files in ``folder`` that vbgm did not write there (not listed in its ``MARKER``)."""
    folder = Path(folder)
    listed = set()
    try:
        listed = set(json.loads((folder / MARKER).read_text()).get("files", []))
    except (OSError, ValueError, AttributeError):
        pass  # no marker (or not ours): every file is foreign
    return [f for f in _files_under(folder) if f != MARKER and f not in listed]


def _write_marker(folder):
    files = [f for f in _files_under(folder) if f != MARKER]
    (Path(folder) / MARKER).write_text(json.dumps({"written_by": "vbgm", "files": files}, indent=1))


@dataclass
class _Output:
    path: Path          # as the user named it
    what: str           # how messages call it ("WAV output", "stems folder", ...)
    folder: bool
    temp: Path | None = None     # where the work writes it (inside a staging folder)
    backup: Path | None = None   # the replaced output, kept until the commit is complete
    installed: bool = False


def _check_not_input(path, what, folder, source):
    """InputError when the output ``path`` would replace or hold the input ``source``."""
    if same_file(path, source):
        raise InputError(f"{path}: is an input of this run; the {what} may never replace an "
                         "input")
    if folder and _inside(source, path):
        raise InputError(f"{path}: holds an input of this run ({source}); choose another {what}")


class Outputs:
    """All outputs of one run: declared (and checked) before the work, committed together.

    Usage::

        outputs = Outputs(inputs=[video], overwrite=False)
        outputs.add_file("music.wav", "WAV output", (".wav",))
        ...                                     # slow work: nothing written yet
        with outputs:                           # commit on success, clean up on any error
            write_wav(audio, rate, outputs.temp("music.wav"))

    ``with`` blocks nest (a callee may join its caller's transaction): only the outermost one
    commits or cleans up.
    """

    def __init__(self, inputs=(), overwrite=False):
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.overwrite = overwrite
        self._outputs = []
        self._staging = {}   # output folder → its staging folder
        self._backups = {}   # staging folder → the folder in it keeping replaced outputs
        self._depth = 0

    def _find(self, path):
        return next((o for o in self._outputs if same_file(o.path, path)), None)

    def _check_against_others(self, path, what, folder):
        for i in self.inputs:
            _check_not_input(path, what, folder, i)
        for o in self._outputs:
            if same_file(path, o.path):
                raise InputError(f"{path}: named for two outputs ({o.what} and {what})")
            if (o.folder and _inside(path, o.path)) or (folder and _inside(o.path, path)):
                raise InputError(f"{path}: {what} and {o.what} ({o.path}) overlap; "
                                 "give them separate places")

    def add_inputs(self, paths):
        """More inputs of the run, known once the first is read (the media an edit list or a
        timeline plays); every output declared so far is checked against them."""
        new = [Path(p) for p in paths if p is not None]
        for o in self._outputs:
            for i in new:
                _check_not_input(o.path, o.what, o.folder, i)
        self.inputs += new

    def add_file(self, path, what="output", suffixes=None):
        """Declare a file output; checks it now. ``suffixes``: the extensions allowed (lower
        case, with the dot), for outputs whose format a tool picks by name."""
        path = Path(check_output_name(path, what))
        self._check_against_others(path, what, folder=False)
        if suffixes and path.suffix.lower() not in suffixes:
            raise InputError(f"{path}: the {what} must end in {' or '.join(suffixes)}")
        check_output(path, self.overwrite)
        self._outputs.append(_Output(path, what, folder=False))
        return path

    def add_folder(self, path, what="output folder"):
        """Declare a folder output; with ``overwrite`` an existing one is replaced only when it
        is empty or holds nothing but what vbgm wrote there."""
        path = Path(check_output_name(path, what, folder=True))
        self._check_against_others(path, what, folder=True)
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise InputError(f"{path}: exists and is not a folder; the {what} must be a "
                                 "new folder")
            if not self.overwrite:
                raise InputError(f"{path}: output exists (use --overwrite to replace it)")
            self._check_replaceable(path, what)
        _check_writable_folder(path)
        self._outputs.append(_Output(path, what, folder=True))
        return path

    @staticmethod
    def _check_replaceable(path, what):
        foreign = foreign_files(path)
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise InputError(f"{path}: holds files vbgm did not write ({foreign[0]}{more}); "
                             f"--overwrite replaces only a {what} vbgm wrote, so it is left as "
                             "it is")

    def temp(self, path):
        """The temporary a declared output is written to: a file path (not created), or an
        empty folder. It keeps the output's name, so tools that pick a format by extension
        work."""
        out = self._find(path)
        if out is None:
            raise KeyError(f"{path}: not a declared output")
        if out.temp is None:
            parent = out.path.parent
            if parent not in self._staging:
                staging = Path(tempfile.mkdtemp(prefix=_STAGING[0], suffix=_STAGING[1], dir=parent))
                staging.chmod(0o755)  # mkdtemp makes it private; its contents become ordinary
                self._staging[parent] = staging
            out.temp = self._staging[parent] / out.path.name
            if out.folder:
                out.temp.mkdir(mode=0o755)
        return out.temp

    def __enter__(self):
        self._depth += 1
        return self

    def __exit__(self, kind, error, tb):
        self._depth -= 1
        if self._depth:
            return False  # a caller's transaction: it commits or cleans up
        if kind is None:
            self.commit()
            return False
        message = (self._write_error(error) if isinstance(error, OSError)
                   and error.errno in _WRITE_ERRNOS else None)
        self.discard()
        if message is not None:
            raise message from None
        return False

    def _write_error(self, error):
        """An OSError while writing, as one line naming the output (not the temporary)."""
        name = error.filename and next((o.path for o in self._outputs if o.temp and (
            same_file(error.filename, o.temp) or _inside(error.filename, o.temp))), None)
        names = str(name) if name else ", ".join(str(o.path) for o in self._outputs)
        return InputError(f"{names}: cannot be written: {error.strerror or error} (nothing was "
                          "written)")

    def commit(self):
        """Install every output; if one cannot be, undo the others (all land, or none)."""
        with _signals_held():
            try:
                for out in self._outputs:
                    if out.temp is None or not os.path.lexists(out.temp):
                        raise RuntimeError(f"{out.path}: the {out.what} was declared but not "
                                           "written")
                    if out.folder:
                        _write_marker(out.temp)
                    self._install(out)
            except BaseException:
                for out in reversed(self._outputs):
                    if out.installed:
                        self._uninstall(out)
                raise
            finally:
                self.discard()

    def _install(self, out):
        final, exists = out.path, os.path.lexists(out.path)
        if exists and self.overwrite:
            # Checked again: the place may have changed while the work ran.
            if any(same_file(final, i) for i in self.inputs):
                raise InputError(f"{final}: is an input of this run; not replaced")
            if out.folder:
                self._check_replaceable(final, out.what)
            # Kept in a folder of their own inside the staging folder (its name cannot be an
            # output's, and adds nothing to the output's name: a name of the longest length
            # allowed is replaced as any other).
            staging = out.temp.parent
            if staging not in self._backups:
                self._backups[staging] = Path(tempfile.mkdtemp(prefix=".replaced-",
                                                               dir=staging))
            out.backup = self._backups[staging] / str(self._outputs.index(out))
            if out.folder:
                os.rename(final, out.backup)
                os.rename(out.temp, final)
            else:
                try:  # a hard link keeps the old file (or link: never its target) until the
                    os.link(final, out.backup, follow_symlinks=False)  # commit is complete
                except OSError:
                    out.backup = None
                os.replace(out.temp, final)
        else:
            _install_new(out.temp, final, out.folder)
        out.installed = True

    @staticmethod
    def _uninstall(out):
        with contextlib.suppress(OSError):
            if out.folder:
                shutil.rmtree(out.path)
            else:
                os.unlink(out.path)
            if out.backup is not None:
                os.rename(out.backup, out.path)
        out.installed = False

    def discard(self):
        """Remove every temporary (and replaced output kept for undo); idempotent."""
        for staging in self._staging.values():
            shutil.rmtree(staging, ignore_errors=True)
        self._staging.clear()
        self._backups.clear()
        for out in self._outputs:
            out.temp = out.backup = None


def _install_new(temp, final, folder):
    """Move ``temp`` to ``final`` without ever replacing what appeared there meanwhile."""
    appeared = InputError(f"{final}: appeared while vbgm was running (another run?); left as "
                          "it is and nothing was written (use --overwrite to replace it)")
    if folder:
        try:  # rename(2) onto a folder with files in it fails; onto a file, too
            os.rename(temp, final)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise appeared from None
            raise
        return
    try:
        os.link(temp, final)  # fails if ``final`` exists: the no-clobber rename
    except FileExistsError:
        raise appeared from None
    except OSError:  # no hard links on this file system: claim the name, then fill it
        try:
            os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise appeared from None
        os.replace(temp, final)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The low-level write of one file (callers check ``path`` first, e.g. with ``Outputs``).
    The temporary keeps the suffix so tools that pick a format by extension (ffmpeg) work,
    and as much of the name as fits: a name of the longest length allowed can be written.
    """
    path = Path(path)
    suffix = path.suffix if len(path.suffix) <= 16 else ""   # a longer one is no format's
    stem = path.stem if suffix else path.name
    room = _limits(path.parent)[0] - len(os.fsencode(f"..XXXXXXXX.tmp{suffix}"))
    while len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path, overwrite=False, inputs=()):
    """Yield an empty temporary folder; on success it becomes ``path`` (a one-output
    ``Outputs``: an existing folder is replaced only with ``overwrite`` and only when vbgm
    wrote everything in it)."""
    outputs = Outputs(inputs, overwrite)
    outputs.add_folder(path)
    with outputs:
        yield outputs.temp(path)


# ---------------------------------------------------------------- signals

_holding = 0      # > 0 while a commit runs: a signal then waits for its end
_held = []


def _on_signal(signum, frame):
    if _holding:
        _held.append(signum)
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_held():
    """Let a commit finish before SIGINT/SIGTERM act (then they do): no half-installed set."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
        if not _holding and _held:
            signum = _held.pop(0)
            _held.clear()
            _on_signal(signum, None)


@contextlib.contextmanager
def cancel_on_signals():
    """While inside: SIGTERM (and SIGHUP) raise ``Terminated``, SIGINT ``KeyboardInterrupt``,
    in the main thread, so ``finally`` blocks and ``Outputs`` remove every temporary. The
    previous handlers come back on leaving. Does nothing outside the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _on_signal) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def worker_signals():
    """Pool-worker initializer: ignore Ctrl-C (the terminal sends it to the whole group; the
    parent stops the pool) and end quietly on SIGTERM, as the pool's terminate() sends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
