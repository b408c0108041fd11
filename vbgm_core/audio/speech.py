"""Where people speak in a clip's own sound: Silero VAD, a trained voice-activity detector.

An energy threshold would duck the music under every door slam and engine; Silero VAD (its
PyPI wheel ships the TorchScript model, so nothing is downloaded at run time) tells voice from
other sound. Audio reaches it as 16 kHz mono float32, the rate it was trained at, resampled by
ffmpeg both for files and for sample arrays (MoviePy's audio), so a clip and its file give the
same samples to the detector.
"""

import functools
import subprocess
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, RenderError
from ..media import ffmpeg_executable, media_duration

VAD_RATE = 16000
# Silero's window at 16 kHz; less audio than one window holds no speech it can find.
WINDOW = 512


@functools.lru_cache(maxsize=1)
def _vad():
    """``(model, get_speech_timestamps)``, loaded once per process."""
    threads = torch.get_num_threads()
    try:
        # Importing silero_vad sets torch to one thread for the whole process: undo that, or
        # the music generation that follows would run on one core.
        from silero_vad import get_speech_timestamps, load_silero_vad
    except ImportError as e:
        raise RenderError("speech detection needs silero-vad: pip install silero-vad") from e
    finally:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():  # torch.jit.load's deprecation: silero's to act on, not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        model = load_silero_vad()
    return model, get_speech_timestamps


def _ffmpeg_to_vad_rate(args, what, stdin=None):
    """Run ffmpeg with ``args`` (inputs and filters) writing 16 kHz mono f32 to stdout.

    The samples are read into one growing buffer and viewed as an array without a copy:
    one copy of the clip's sound at 16 kHz (3.8 MB a minute) is the detector's whole memory.
    """
    import tempfile
    import threading

    cmd = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", *args,
           "-vn", "-ac", "1", "-ar", str(VAD_RATE), "-f", "f32le", "-"]
    data = bytearray()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE if stdin else
                                subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        feeder = None
        if stdin is not None:   # fed from a thread: ffmpeg's output is read meanwhile
            def feed():
                try:
                    proc.stdin.write(stdin)
                except BrokenPipeError:
                    pass
                finally:
                    proc.stdin.close()
            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            data += chunk
        proc.stdout.close()
        code = proc.wait()
        if feeder is not None:
            feeder.join()
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise RenderError(f"{what}: ffmpeg failed: {lines[-1] if lines else code}")
    del data[len(data) - len(data) % 4:]
    return np.frombuffer(data, dtype="<f4")


def _segments(audio16k):
    """Speech segments (seconds) in 16 kHz mono float32 audio."""
    if len(audio16k) < WINDOW:
        return []
    model, get_speech_timestamps = _vad()
    threads = torch.get_num_threads()
    # One thread: the same samples give the same probabilities on any machine (a parallel
    # reduction may sum in another order), and the clips are short enough not to need more.
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            found = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio16k)),
                                          model, sampling_rate=VAD_RATE)
    finally:
        torch.set_num_threads(threads)
    return [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in found]


def detect_speech(path, start_s=0.0, end_s=None):
    """Speech segments in a media file's own audio, in seconds from ``start_s``.

    Args:
        path: a video or audio file (only read).
        start_s, end_s: the range to look in (the scored range); None = to the end.

    Returns:
        Sorted, disjoint ``[(start_s, end_s), ...]``; ``[]`` when the file has no audio.

    Raises:
        InputError: missing or unreadable file, or an empty range.
        RenderError: ffmpeg failed, or silero-vad is not installed.
    """
    path = Path(path)
    media_duration(path)  # InputError for a missing or unreadable file
    try:
        media_duration(path, "audio")
    except InputError:
        return []  # no audio stream: nobody speaks
    start = float(start_s or 0.0)
    if start < 0 or (end_s is not None and float(end_s) <= start):
        raise InputError(f"{path}: speech range {start_s}-{end_s} s is empty")
    args = ["-ss", f"{start:.6f}"] if start else []
    args += ["-i", path]
    args += ["-t", f"{float(end_s) - start:.6f}"] if end_s is not None else []
    return _segments(_ffmpeg_to_vad_rate(args, f"reading the audio of {path}"))


def detect_speech_samples(samples, sample_rate):
    """Speech segments in an audio array (e.g. a MoviePy clip's ``to_soundarray``).

    Args:
        samples: float audio, ``[n]`` or ``[n, channels]``, range [-1, 1].
        sample_rate: its rate in Hz.

    Returns:
        Sorted, disjoint ``[(start_s, end_s), ...]`` in seconds from the first sample.
    """
    audio = np.asarray(samples, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    if audio.ndim != 2 or len(audio) == 0:
        return []
    rate = int(round(sample_rate))
    if rate == VAD_RATE and audio.shape[1] == 1:
        return _segments(audio[:, 0])
    args = ["-f", "f32le", "-ar", str(rate), "-ac", str(audio.shape[1]), "-i", "-"]
    return _segments(_ffmpeg_to_vad_rate(args, "resampling audio for speech detection",
                                         stdin=np.ascontiguousarray(audio, "<f4").tobytes()))


def edit_speech(edit):
    """Speech heard in an edit list (``video.edit.EditList``): ``[(start_s, end_s), ...]`` in
    timeline seconds, sorted and disjoint. Searched in the edit's ``sounds`` when it lists them
    (sound heard apart from the picture, at real speed), else in the segments whose sound plays
    (``audio``), each over its visible source range only."""
    heard = edit.sounds if edit.sounds is not None else [s for s in edit.segments if s.audio]
    spans = sorted((seg.to_timeline(s), min(seg.to_timeline(e), seg.timeline_end_s))
                   for seg in heard
                   for s, e in detect_speech(seg.path, seg.source_start_s, seg.source_end_s))
    found = []
    for s, e in spans:   # sounds may overlap; speech running on across a cut is one segment
        if e <= s:
            continue
        if found and s <= found[-1][1] + 1e-6:
            found[-1] = (found[-1][0], max(found[-1][1], e))
        else:
            found.append((s, e))
    return found


def segments_iou(a, b):
    """Intersection over union of two sets of segments, by total duration (1.0 if both empty)."""
    def merged(segments):
        out = []
        for s, e in sorted(segments):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        return out

    a, b = merged(a), merged(b)
    inter = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)
    union = sum(e - s for s, e in a) + sum(e - s for s, e in b) - inter
    return inter / union if union > 0 else 1.0
