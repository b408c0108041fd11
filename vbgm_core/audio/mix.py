"""How the music meets the picture's own sound, decided once per run for every way in.

The WAV, MIDI and stems vbgm writes are the music itself; the mix applies only where the music
meets the clip's own sound: the muxed video (``mux_mixed``), the MoviePy composite, the Blender
strip's volume keyframes (from the report's ``gain_db``). All of them take one ``Mix``, made by
``plan_mix`` from the user's ``ScoreOptions``: its mode, the music's ``GainCurve`` (breakpoints
``(t, dB)`` with the linear gain interpolated linearly between them, which is how Blender
interpolates volume keyframes, so a keyframed strip plays the same curve as the muxed file),
the level of the original sound under it, and the speech it ducks under.

Modes (``ScoreOptions.mix``): ``replace`` (the music alone), ``mix`` (the music over the
original at ``original_gain_db``), ``duck`` (``mix``, with the music lowered by
``duck_depth_db`` wherever speech is found, reaching the depth ``duck_attack_s`` after the ramp
starts, i.e. as the speech starts, and back ``duck_release_s`` after it ends).
"""

import math
from dataclasses import dataclass

import numpy as np

_CHUNK = 2**20  # samples per block when applying a curve (bounds the temporary arrays)


def db_to_gain(db):
    """Decibels → linear amplitude factor (scalar or array; -inf → 0)."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0) if np.ndim(db) else \
        10.0 ** (float(db) / 20.0)


def gain_to_db(gain):
    """Linear amplitude factor → decibels (0 → -inf)."""
    gain = float(gain)
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


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

    def apply_block(self, block, start, sample_rate):
        """``block`` (float [m, channels]) of a piece starting at sample ``start``, times the
        curve there (float32, a new array): the curve applied as the piece streams by."""
        block = np.asarray(block, dtype=np.float32)
        if len(self.points) and all(db == self.points[0][1] for _, db in self.points):
            g = np.float32(db_to_gain(self.points[0][1]))    # constant: one factor
            return block * g if g != 1 else block.copy()
        g = self.gains(np.arange(start, start + len(block)) / float(sample_rate)).astype(np.float32)
        return block * (g[:, None] if block.ndim == 2 else g)

    def breakpoints(self):
        """``[[t_s, dB], ...]`` rounded for a report (ms, hundredths of a dB)."""
        return [[round(t, 3), round(db, 2)] for t, db in self.points]


def duck_curve(segments, duration_s, music_gain_db, duck_depth_db, duck_attack_s,
               duck_release_s):
    """The music's level for ``duration_s`` seconds, ducked under the speech ``segments``
    (the settings are ``ScoreOptions``' of the same names, already checked there).

    The music is at ``music_gain_db + duck_depth_db`` from each segment's start to its end,
    ramps down over the ``duck_attack_s`` before the start and back up over the
    ``duck_release_s`` after the end. Segments closer than one release plus one attack stay
    ducked between them: the music does not pump up for a breath.
    """
    depth_db, attack_s, release_s = duck_depth_db, duck_attack_s, duck_release_s
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


@dataclass(frozen=True)
class Mix:
    """The mix of one run.

    Attributes:
        mode: ``replace``, ``mix`` or ``duck``.
        music: the music's level over the piece (a ``GainCurve``).
        original_gain_db: the level of the clip's own sound under the music (``mix``,
            ``duck``).
        speech: the speech the music ducks under, ``((start_s, end_s), ...)`` in the music's
            seconds; None unless ``mode == "duck"`` (nothing was looked for).
    """

    mode: str
    music: GainCurve
    original_gain_db: float
    speech: tuple | None = None

    @property
    def keeps_original(self):
        """Whether the clip's own sound plays under the music."""
        return self.mode != "replace"

    def report(self):
        """``{"speech": [{"start_s", "end_s"}, ...] or None, "gain_db": [[t_s, dB], ...]}``."""
        speech = None if self.speech is None else [
            {"start_s": round(s, 3), "end_s": round(e, 3)} for s, e in self.speech]
        return {"speech": speech, "gain_db": self.music.breakpoints()}


def plan_mix(options, duration_s, find_speech=None):
    """The ``Mix`` for ``duration_s`` seconds of music with the user's ``options``.

    Args:
        options: ``ScoreOptions`` (mix, music_gain_db, original_gain_db, duck_*).
        duration_s: the music's length.
        find_speech: ``() -> [(start_s, end_s), ...]`` in the music's seconds, called only to
            duck (it may decode audio); None when there is no sound to search (nobody speaks).
    """
    if options.mix != "duck":
        return Mix(options.mix, GainCurve.constant(options.music_gain_db, duration_s),
                   options.original_gain_db)
    speech = tuple(find_speech()) if find_speech is not None else ()
    curve = duck_curve(speech, duration_s, options.music_gain_db, options.duck_depth_db,
                       options.duck_attack_s, options.duck_release_s)
    return Mix("duck", curve, options.original_gain_db, speech)


def mux_mixed(video, audio, sample_rate, out_path, mix, start_s=None, end_s=None,
              overwrite=False, ceiling_dbtp=None):
    """Write a copy of ``video`` with the music mixed as ``mix`` says (``audio.mux``).

    ``audio`` is the music at 0 dB (float32 [n, 2]); the curve is applied as it streams into
    ffmpeg, so the caller's WAV output stays the music itself. Returns ``out_path``
    (``mux_music`` also returns the muxed audio's measurement).
    """
    audio = np.asarray(audio, dtype=np.float32)

    def play(sink, trim_db, first):
        trim = np.float32(db_to_gain(trim_db))
        for i in range(0, len(audio), _CHUNK):
            block = audio[i:i + _CHUNK]
            sink(block * trim if trim_db else block, i)

    mux_music(video, play, sample_rate, out_path, mix, start_s, end_s, overwrite, ceiling_dbtp)
    return out_path


def mux_music(video, play, sample_rate, out_path, mix, start_s=None, end_s=None,
              overwrite=False, ceiling_dbtp=None):
    """``mux.mux_stream`` with ``mix``: the music's curve applied to each block as ``play``
    (``play(sink, trim_db, first)``, see ``mux_stream``) streams it; the original sound under
    it where the mode keeps it. ``ceiling_dbtp``: the muxed audio's true peak is held under it
    after the encode, by encoding the music lower (under ``mix``/``duck`` that cannot lower
    the clip's own sound: ``mux_stream`` stops when it no longer helps). Returns the muxed
    audio's measurement."""
    from .mux import mux_stream

    curve = mix.music

    def played(sink, trim_db, first):
        play(lambda block, start: sink(curve.apply_block(block, start, sample_rate), start),
             trim_db, first)

    return mux_stream(video, played, sample_rate, out_path,
                      mode="mix" if mix.keeps_original else "replace",
                      original_gain=db_to_gain(mix.original_gain_db), start_s=start_s,
                      end_s=end_s, overwrite=overwrite,
                      ceiling_dbtp=ceiling_dbtp)


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
