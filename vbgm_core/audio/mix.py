"""Mix automation: the music's level over time, lowered under speech (ducking).

The WAV, MIDI and stems vbgm writes are the music itself; the level is applied only where the
music meets the clip's own sound: the muxed video, the MoviePy composite, the Blender strip's
volume keyframes. All three use one ``GainCurve``: breakpoints ``(t, dB)`` with the linear gain
interpolated linearly between them, which is how Blender interpolates volume keyframes, so a
keyframed strip plays the same curve as the muxed file.

Mix modes: ``replace`` (the music alone), ``mix`` (the music over the original at
``original_gain_db``), ``duck`` (``mix``, with the music lowered by ``depth_db`` wherever speech
is found, reaching the depth ``attack_s`` after the ramp starts, i.e. as the speech starts, and
back ``release_s`` after it ends).
"""

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

MIX_MODES = ("replace", "mix", "duck")
DEFAULT_MUSIC_GAIN_DB = 0.0
DEFAULT_ORIGINAL_GAIN_DB = -10.5  # ≈ 0.3 linear, the original's level before gains were in dB
# An editor's auto-duck: about -12 dB under dialogue, a quick fade down, a slower fade back up
# so the music does not jump in at the end of every sentence.
DEFAULT_DEPTH_DB = -12.0
DEFAULT_ATTACK_S = 0.3
DEFAULT_RELEASE_S = 0.8
MAX_RAMP_S = 10.0
_CHUNK = 2**20  # samples per block when applying a curve (bounds the temporary arrays)


def db_to_gain(db):
    """Decibels → linear amplitude factor (scalar or array; -inf → 0)."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0) if np.ndim(db) else \
        10.0 ** (float(db) / 20.0)


def gain_to_db(gain):
    """Linear amplitude factor → decibels (0 → -inf)."""
    gain = float(gain)
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def check_mix(mix="replace", music_gain_db=DEFAULT_MUSIC_GAIN_DB,
              original_gain_db=DEFAULT_ORIGINAL_GAIN_DB, depth_db=DEFAULT_DEPTH_DB,
              attack_s=DEFAULT_ATTACK_S, release_s=DEFAULT_RELEASE_S):
    """Raise InputError for a bad mix setting (call it before any long work)."""
    if mix not in MIX_MODES:
        raise InputError(f"mix must be one of {', '.join(MIX_MODES)}, not {mix!r}")
    for name, value in (("music gain", music_gain_db), ("original gain", original_gain_db),
                        ("duck depth", depth_db)):
        if not math.isfinite(float(value)):
            raise InputError(f"{name} {value} dB is not a finite number")
    if float(depth_db) > 0:
        raise InputError(f"duck depth {depth_db} dB must be 0 or negative (it lowers the music)")
    for name, value in (("duck attack", attack_s), ("duck release", release_s)):
        if not 0.0 <= float(value) <= MAX_RAMP_S:
            raise InputError(f"{name} {value} s is outside [0, {MAX_RAMP_S:g}] s")


@dataclass(frozen=True)
class GainCurve:
    """The music's level: breakpoints ``(t_s, dB)``, sorted by time, held constant outside.

    Two breakpoints may share a time (a step, from a zero-length ramp); at that time the later
    one holds. Between breakpoints the linear gain moves linearly.
    """

    points: tuple

    @classmethod
    def constant(cls, db, duration_s):
        return cls(((0.0, float(db)), (float(duration_s), float(db))))

    def gains(self, times):
        """Linear gain at ``times`` (seconds, array), float64."""
        t = np.asarray(times, dtype=np.float64)
        ts = np.array([p[0] for p in self.points], dtype=np.float64)
        gs = db_to_gain(np.array([p[1] for p in self.points], dtype=np.float64))
        right = np.clip(np.searchsorted(ts, t, side="right"), 1, len(ts) - 1)
        t0, t1, g0, g1 = ts[right - 1], ts[right], gs[right - 1], gs[right]
        span = t1 - t0
        frac = np.clip(np.divide(t - t0, span, out=np.ones_like(t), where=span > 0), 0.0, 1.0)
        out = g0 + (g1 - g0) * frac
        out[t < ts[0]] = gs[0]
        return out

    def apply(self, audio, sample_rate):
        """``audio`` (float [n, channels]) times the curve, as float32 (a new array)."""
        audio = np.asarray(audio, dtype=np.float32)
        out = np.empty_like(audio)
        for i in range(0, len(audio), _CHUNK):
            block = audio[i:i + _CHUNK]
            g = self.gains(np.arange(i, i + len(block)) / float(sample_rate)).astype(np.float32)
            out[i:i + len(block)] = block * (g[:, None] if block.ndim == 2 else g)
        return out

    def breakpoints(self):
        """``[[t_s, dB], ...]`` rounded for a report (ms, hundredths of a dB)."""
        return [[round(t, 3), round(db, 2)] for t, db in self.points]


def duck_curve(segments, duration_s, music_gain_db=DEFAULT_MUSIC_GAIN_DB,
               depth_db=DEFAULT_DEPTH_DB, attack_s=DEFAULT_ATTACK_S,
               release_s=DEFAULT_RELEASE_S):
    """The music's level for ``duration_s`` seconds, ducked under the speech ``segments``.

    The music is at ``music_gain_db + depth_db`` from each segment's start to its end, ramps
    down over the ``attack_s`` before the start and back up over the ``release_s`` after the
    end. Segments closer than one release plus one attack stay ducked between them: the music
    does not pump up for a breath.
    """
    check_mix("duck", music_gain_db, 0.0, depth_db, attack_s, release_s)
    duration = float(duration_s)
    base, low = float(music_gain_db), float(music_gain_db) + float(depth_db)
    spans = []
    for s, e in sorted((max(0.0, float(s)), min(duration, float(e))) for s, e in segments):
        if e <= s:
            continue
        if spans and s - attack_s <= spans[-1][1] + release_s:
            spans[-1][1] = max(spans[-1][1], e)
        else:
            spans.append([s, e])
    if not spans or depth_db == 0:
        return GainCurve.constant(base, duration)
    raw = [(min(0.0, spans[0][0] - attack_s), base)]
    for s, e in spans:
        raw += [(s - attack_s, base), (s, low), (e, low), (e + release_s, base)]
    raw.append((max(duration, raw[-1][0]), base))
    full = GainCurve(tuple(raw))
    # Cut to [0, duration], with the level the ramps have at the two ends.
    inside = [(0.0, gain_to_db(full.gains([0.0])[0]))]
    inside += [p for p in raw if 0.0 < p[0] < duration]
    end_gain = full.gains([np.nextafter(duration, -np.inf)])[0]
    inside.append((duration, gain_to_db(end_gain)))
    # Drop the middle of flat runs: a compact list for the report and the keyframes.
    points = [p for i, p in enumerate(inside)
              if i in (0, len(inside) - 1) or not inside[i - 1][1] == p[1] == inside[i + 1][1]]
    return GainCurve(tuple(points))


def prepare_mix(video, start_s=0.0, end_s=None, duration_s=None, *, mix="replace",
                music_gain_db=DEFAULT_MUSIC_GAIN_DB, depth_db=DEFAULT_DEPTH_DB,
                attack_s=DEFAULT_ATTACK_S, release_s=DEFAULT_RELEASE_S):
    """The speech and the music's level for a scored range of ``video``.

    Args:
        video: the source video (only read); its own audio is searched for speech.
        start_s, end_s: the scored range; ``end_s`` None = ``start_s + duration_s``.
        duration_s: the music's length (the rhythm's ``duration_s``).
        mix, music_gain_db, depth_db, attack_s, release_s: the mix settings.

    Returns:
        ``(segments, curve)``: the speech segments in seconds from ``start_s`` (None unless
        ``mix == "duck"``: nothing was looked for), and the ``GainCurve`` of the music.
    """
    check_mix(mix, music_gain_db, DEFAULT_ORIGINAL_GAIN_DB, depth_db, attack_s, release_s)
    if mix != "duck":
        return None, GainCurve.constant(music_gain_db, duration_s)
    from .speech import detect_speech

    start = float(start_s or 0.0)
    end = start + float(duration_s) if end_s is None else float(end_s)
    segments = detect_speech(video, start, end)
    return segments, duck_curve(segments, duration_s, music_gain_db, depth_db, attack_s,
                                release_s)


def report_fields(segments, curve):
    """``{"speech": [{"start_s", "end_s"}, ...] or None, "gain_db": [[t_s, dB], ...]}``."""
    speech = None if segments is None else [
        {"start_s": round(s, 3), "end_s": round(e, 3)} for s, e in segments]
    return {"speech": speech, "gain_db": curve.breakpoints()}


def mux_mixed(video, audio, sample_rate, out_path, curve, mix="replace",
              original_gain_db=DEFAULT_ORIGINAL_GAIN_DB, start_s=None, end_s=None,
              overwrite=False):
    """Write a copy of ``video`` with the music at ``curve``'s level (``vbgm_core.mux.mux``).

    ``audio`` is the un-ducked music (float32 [n, 2]); the curve is applied to a temporary
    WAV, so the caller's WAV output stays the music itself. With ``mix`` "mix" or "duck" the
    video's own audio plays under it at ``original_gain_db``.
    """
    from .mux import mux
    from .render import write_wav

    check_mix(mix, 0.0, original_gain_db)
    with tempfile.TemporaryDirectory() as tmp:
        wav = write_wav(curve.apply(audio, sample_rate), sample_rate, Path(tmp) / "music.wav")
        return mux(video, wav, out_path, mode="replace" if mix == "replace" else "mix",
                   original_gain=db_to_gain(original_gain_db), music_gain=1.0,
                   start_s=start_s, end_s=end_s, overwrite=overwrite)


def plot_gain(ax, segments, points, duration_s=None):
    """Draw the speech (shaded spans) and the music's gain in dB on a matplotlib ``ax``.

    Args:
        segments: ``[(start_s, end_s), ...]`` or the report's dicts; None draws none.
        points: the curve's breakpoints ``[(t_s, dB), ...]`` (``GainCurve.points`` or the
            report's ``gain_db``).
        duration_s: the x extent; None = the last breakpoint.

    Returns:
        The gain's ``Line2D``.
    """
    curve = GainCurve(tuple((float(t), float(db)) for t, db in points))
    end = float(duration_s) if duration_s is not None else curve.points[-1][0]
    for i, seg in enumerate(segments or []):
        s, e = (seg["start_s"], seg["end_s"]) if isinstance(seg, dict) else seg
        ax.axvspan(s, e, color="tab:orange", alpha=0.25, lw=0, label="speech" if i == 0 else None)
    t = np.linspace(0.0, end, max(2, int(end * 50) + 1))  # 20 ms steps show the ramps' shape
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(curve.gains(t))
    (line,) = ax.plot(t, db, color="tab:blue", lw=1.2, label="music gain")
    ax.set_xlim(0.0, end)
    ax.set_ylabel("music gain (dB)")
    ax.legend(loc="lower right", fontsize="small")
    return line
