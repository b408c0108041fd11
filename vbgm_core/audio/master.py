"""Mastering: a little reverb, gentle compression, loudness to a target, a true-peak limiter,
streamed: a piece is never held whole.

Field-standard libraries where they work block-wise: Spotify's ``pedalboard`` (JUCE's reverb,
compressor and the K-weighting filters, their state carried from block to block with
``reset=False``); the BS.1770 gating, the 4x true-peak oversampling and the look-ahead limiter
are ``dsp.py`` (pyloudnorm and scipy's ``resample_poly`` only measure a whole array in float64,
so they stay as the references the tests compare against). Web video platforms normalise to
about -14 LUFS, broadcast (EBU R128) to -23; true peaks are kept at or below -1 dBTP so that
lossy encoding does not clip (the muxed file is measured after its AAC encode, audio/mux.py).

A piece (``Piece``) is mastered in passes over blocks of ``BLOCK`` samples, with one block of
audio in memory per pass:

1. ``Master.process``: the synthesizer's raw blocks, peak-normalised, through the reverb and
   the compressor; their loudness and true-peak envelope are measured as they pass and the
   processed float32 blocks and the envelope go to an anonymous temporary file (12 bytes a
   stereo sample: 127 MB for 10 minutes at 44.1 kHz; removed when closed or at exit).
2. ``Master.solve``: the drive gain that brings the loudness to the target. Where the limiter
   engages it costs some loudness: trial passes over the temporary (limiter and loudness only,
   secant steps) correct the gain until it lands within ``_TOLERANCE_LU``; one or two in
   practice, none when the limiter stays out.
3. ``Piece.play``: the final pass yields the mastered blocks (gain, limiter, fades) to the
   outputs given (a WAV writer, ffmpeg's stdin, an array) and measures exactly what it yields:
   integrated loudness, true peak, clipped samples. Those are the report's figures; nothing
   measures the audio a second time.

Deterministic: the same raw piece gives the same bytes, whatever the block size of the caller.
"""

import math
import os
import queue
import tempfile
import threading

import numpy as np

from ..errors import InputError, RenderError
from .dsp import Limiter, Loudness, TruePeak, db

TRUE_PEAK_DBTP = -1.0
OVERSAMPLE = 4           # true peak: the signal's peak at 4x the sample rate (BS.1770 annex 2)
REVERB_WET = 0.08        # "a little": a small room, well under the dry signal
BLOCK = 65536            # samples per block (1.5 s at 44.1 kHz)
CLIP_LEVEL = 32767 / 32768  # a sample at or over this is clipped once written as 16-bit PCM
_SILENCE_LUFS = -70.0    # the absolute gate: quieter music has no loudness to set
_MARGIN_DB = 0.05        # the limiter aims this far under the ceiling
_TOLERANCE_LU = 0.05     # the gain is solved to within this (then the measurement says)
_TRIALS = 4              # at most this many trial passes
MUX_TRUE_PEAK_DBTP = -1.6  # the muxed copy's ceiling: AAC adds up to ~0.6 dB of true peak


def _blocks(audio, size=BLOCK):
    for i in range(0, len(audio), size):
        yield audio[i:i + size]


def true_peak_db(audio, sample_rate):
    """True peak in dBTP of float audio [n] or [n, channels] (4x polyphase oversampling,
    block-wise in float32: ``dsp.TruePeak``)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return -math.inf
    meter = TruePeak(1 if audio.ndim == 1 else audio.shape[1])
    for block in _blocks(audio):
        meter.push(block)
    meter.finish()
    return db(meter.peak)


def integrated_loudness(audio, sample_rate):
    """BS.1770 integrated loudness in LUFS (-inf for silence or audio under 0.4 s),
    block-wise (``dsp.Loudness``)."""
    audio = np.asarray(audio, dtype=np.float32)
    meter = Loudness(sample_rate, 1 if audio.ndim == 1 else audio.shape[1])
    for block in _blocks(audio):
        meter.push(block)
    return meter.integrated()


def measure(blocks, sample_rate, channels=2):
    """Loudness (LUFS), true peak (dBTP) and clipped samples of a stream of float blocks."""
    meter = Meter(sample_rate, channels)
    for block in blocks:
        meter(block)
    return meter.result()


class Meter:
    """Loudness, true peak and clipped samples of the blocks it is called with."""

    def __init__(self, sample_rate, channels=2):
        self.loudness = Loudness(sample_rate, channels)
        self.peak = TruePeak(channels)
        self.clipped = 0
        self.samples = 0

    def __call__(self, block, start=None):
        self.loudness.push(block)
        self.peak.push(block)
        self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self.samples += len(block)

    def result(self):
        self.peak.finish()
        return {"loudness_lufs": self.loudness.integrated(), "true_peak_dbtp": db(self.peak.peak),
                "clipped_samples": self.clipped}


def _check_targets(loudness, true_peak_dbtp):
    if not -70.0 <= loudness <= 0.0:
        raise InputError(f"loudness target {loudness} LUFS is outside -70..0")
    if true_peak_dbtp > 0:
        raise InputError(f"true-peak ceiling {true_peak_dbtp} dBTP is above 0")


def _pedalboard():
    try:
        import pedalboard as pb
    except ImportError as e:
        raise RenderError("mastering needs pedalboard: pip install pedalboard") from e
    return pb


def threaded(produce, consume, depth=3):
    """Run the generator ``produce()`` in a worker thread and ``consume(item)`` here on what it
    yields, through a queue of ``depth`` items: the two overlap on two cores wherever they
    release the GIL (numpy, pedalboard, FluidSynth, pipe writes). An exception on either side
    stops both and is raised here."""
    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    failure = []

    def work():
        try:
            for item in produce():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:   # noqa: BLE001 - handed to the consumer's thread
            failure.append(e)
        while not stop.is_set():
            try:
                items.put(done, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=work, name="vbgm-audio", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is done:
                break
            consume(item)
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def fade_factors(n, fades, start, stop):
    """Fade factors over samples ``[start, stop)`` of a piece of ``n`` samples with
    ``fades = (fade-in, fade-out)`` lengths in samples: half-cosine ramps, exactly 0 on the
    first and the last sample."""
    fade = np.ones(stop - start, np.float32)
    for length, head in ((fades[0], True), (fades[1], False)):
        length = min(int(length), n)
        if length <= 0:
            continue
        lo, hi = (0, length) if head else (n - length, n)
        a, b = max(lo, start), min(hi, stop)
        if a < b:
            ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))).astype(np.float32)
            ramp = ramp if head else ramp[::-1]
            fade[a - start:b - start] *= ramp[a - lo:b - lo]
    return fade


class Piece:
    """A piece of ``n`` stereo samples kept in anonymous temporary files (the raw, then the
    processed audio, and its true-peak envelope), and how to play it mastered.

    Attributes:
        gain: the drive gain (linear) the final pass applies before the limiter.
        limiter_db: the limiter's ceiling in dBTP, or None for none.
        scale, clip: the peak normalisation applied while reading (unmastered pieces).
        fades: (fade-in, fade-out) lengths in samples.
        measured: what the last complete ``play`` measured (``Meter.result()``), or None.
    """

    def __init__(self, n, sample_rate, channels=2, folder=None):
        self.n, self.rate, self.channels = int(n), int(sample_rate), channels
        self._folder = folder
        # closed by close()
        self._audio = tempfile.TemporaryFile(prefix="vbgm-audio-", dir=folder)  # noqa: SIM115
        self._env = None
        self.gain, self.limiter_db, self.scale, self.clip = 1.0, None, 1.0, None
        self.fades = (0, 0)
        self.measured = None
        self.mux = None              # another rendition (render.render_piece), or None
        self.loudness_in = None      # loudness of the processed piece before the gain
        self.peak_in = 0.0           # its true peak (linear)
        self.trials = 0

    # -- storage ---------------------------------------------------------------------------
    def write(self, start, block):
        data = np.ascontiguousarray(block, np.float32).tobytes()
        offset = start * self.channels * 4
        while data:
            written = os.pwrite(self._audio.fileno(), data, offset)
            data, offset = data[written:], offset + written

    def read(self, start, stop):
        size = (stop - start) * self.channels * 4
        data = os.pread(self._audio.fileno(), size, start * self.channels * 4)
        if len(data) != size:
            raise RenderError("the temporary audio file was cut short (is the disk full?)")
        return np.frombuffer(data, np.float32).reshape(-1, self.channels)

    def write_env(self, start, env):
        if self._env is None:
            self._env = tempfile.TemporaryFile(prefix="vbgm-env-", dir=self._folder)  # noqa: SIM115
        os.pwrite(self._env.fileno(), np.ascontiguousarray(env, np.float32).tobytes(), start * 4)

    def read_env(self, start, stop):
        """The envelope over ``[start, stop)``, zeros outside the piece."""
        out = np.zeros(stop - start, np.float32)
        lo, hi = max(start, 0), min(stop, self.n)
        if hi > lo:
            data = os.pread(self._env.fileno(), (hi - lo) * 4, lo * 4)
            out[lo - start:lo - start + len(data) // 4] = np.frombuffer(data, np.float32)
        return out

    def close(self):
        for f in (self._audio, self._env):
            if f is not None:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- playing -----------------------------------------------------------------------------
    def _fade(self, start, stop):
        return fade_factors(self.n, self.fades, start, stop)

    def _mastered(self, renditions, fades=True):
        """Generator of ``(start, [float32 [m, channels] per rendition])``: the piece through
        each of ``renditions`` (``(gain, limiter ceiling dBTP or None, trim dB)``), read once."""
        chains = []
        for gain, limiter_db, trim_db in renditions:
            limiter = None if limiter_db is None else Limiter(limiter_db - _MARGIN_DB, self.rate)
            chains.append((gain, limiter, 10.0 ** (trim_db / 20.0)))
        pad = max((c[1].pad for c in chains if c[1] is not None), default=0)
        for start in range(0, self.n, BLOCK):
            stop = min(start + BLOCK, self.n)
            x = self.read(start, stop)
            if self.clip is not None:
                x = np.clip(x * np.float32(self.scale), -self.clip, self.clip)
            env = self.read_env(start - pad, stop + pad) if pad else None
            fade = self._fade(start, stop) if fades else None
            out = []
            for gain, limiter, trim in chains:
                factor = np.full(stop - start, gain * trim, np.float32)
                if limiter is not None:
                    cut = pad - limiter.pad
                    factor *= limiter.gains(env[cut:len(env) - cut], gain)
                if fade is not None:
                    factor *= fade
                out.append(x * factor[:, None])
            yield start, out

    def rendition(self, trim_db=0.0):
        """This piece's mastering (``Master.solve``) as ``(gain, ceiling, trim_db)``."""
        return (self.gain, self.limiter_db, trim_db)

    def play(self, sinks, trim_db=0.0, measure=True, also=()):
        """The final pass: every mastered block to each of ``sinks`` (callables
        ``sink(block, start)``), measured when ``measure`` (then ``self.measured``).
        ``trim_db``: a gain after everything. ``also``: more ``(rendition, sinks)`` played
        in the same pass (``Master.solve(piece, ceiling)``'s, e.g. the muxed copy's with more
        headroom for its lossy encoder). Returns the measurement (or None)."""
        meter = Meter(self.rate, self.channels) if measure else None
        feeds = ([(self.rendition(trim_db), sinks)] if sinks or measure else []) + list(also)

        def consume(item):
            start, blocks = item
            if meter is not None:
                meter(blocks[0])
            for (_, targets), block in zip(feeds, blocks):
                for sink in targets:
                    sink(block, start)

        threaded(lambda: self._mastered([r for r, _ in feeds]), consume)
        if meter is not None:
            self.measured = meter.result()
        return self.measured if measure else None

    def array(self):
        """The mastered piece as one float32 array ``[n, channels]`` (short pieces, tests)."""
        out = np.empty((self.n, self.channels), np.float32)

        def keep(block, start):
            out[start:start + len(block)] = block
        self.play([keep], measure=False)
        return out


class Master:
    """Mastering of one ``Piece`` whose raw (synthesized) audio has been written."""

    def __init__(self, loudness, true_peak_dbtp=TRUE_PEAK_DBTP, reverb=REVERB_WET):
        _check_targets(loudness, true_peak_dbtp)
        self.target, self.ceiling, self.reverb = float(loudness), float(true_peak_dbtp), reverb

    def process(self, piece, scale=1.0, clip=None):
        """Pass 1 over ``piece`` (in place): ``scale`` and ``clip`` (the peak normalisation),
        reverb and compression; measures the loudness and the true-peak envelope."""
        pb = _pedalboard()
        chain = pb.Pedalboard(
            ([pb.Reverb(room_size=0.3, damping=0.6, wet_level=self.reverb, dry_level=1.0,
                        width=0.8)] if self.reverb > 0 else [])
            + [pb.Compressor(threshold_db=-20.0, ratio=2.0, attack_ms=15.0, release_ms=200.0)])
        loudness, peak = Loudness(piece.rate, piece.channels), TruePeak(piece.channels)
        env_at = [0]

        def produce():
            for start in range(0, piece.n, BLOCK):
                x = piece.read(start, min(start + BLOCK, piece.n))
                if clip is not None:
                    x = np.clip(x * np.float32(scale), -clip, clip)
                elif scale != 1.0:
                    x = x * np.float32(scale)
                # pedalboard wants [channels, n]; reset=False: its state runs on
                y = chain(np.ascontiguousarray(x.T), piece.rate, reset=False).T
                yield start, np.ascontiguousarray(y, np.float32)

        def consume(item):
            start, y = item
            piece.write(start, y)
            loudness.push(y)
            env = peak.push(y)
            piece.write_env(env_at[0], env)
            env_at[0] += len(env)

        threaded(produce, consume)
        piece.write_env(env_at[0], peak.finish())
        piece.loudness_in = loudness.integrated()
        piece.peak_in = peak.peak
        piece.scale, piece.clip = 1.0, None    # applied: the temporary holds the processed piece
        return piece

    def solve(self, piece, ceiling_db=None):
        """Set ``piece.gain`` and ``piece.limiter_db`` so that the final pass lands on the
        target: the gain from the measured loudness, corrected by trial passes where the
        limiter engages. With ``ceiling_db`` (another ceiling, e.g. the muxed copy's), the
        piece is left as it is and that rendition ``(gain, ceiling, 0)`` is returned."""
        gain, limiter_db = self._solve(piece, self.ceiling if ceiling_db is None else ceiling_db)
        if ceiling_db is not None:
            return (gain, limiter_db, 0.0)
        piece.gain, piece.limiter_db = gain, limiter_db
        return piece

    def _solve(self, piece, ceiling):
        loud = piece.loudness_in
        if not np.isfinite(loud) or loud < _SILENCE_LUFS:
            return 1.0, None   # silence stays silence
        gain_db = self.target - loud
        if gain_db + db(piece.peak_in) <= ceiling - _MARGIN_DB:
            return 10.0 ** (gain_db / 20.0), ceiling     # the limiter stays out: exact
        tried = []   # (gain_db, loudness)
        for _ in range(_TRIALS):
            got = self._trial(piece, gain_db, ceiling)
            piece.trials += 1
            tried.append((gain_db, got))
            miss = self.target - got
            if abs(miss) <= _TOLERANCE_LU or not np.isfinite(got):
                break
            slope = 1.0
            if len(tried) > 1:
                (g0, l0), (g1, l1) = tried[-2], tried[-1]
                if g1 != g0 and (l1 - l0) / (g1 - g0) > 0.05:
                    slope = (l1 - l0) / (g1 - g0)
            gain_db += min(miss / slope, 12.0)
        best = min(tried, key=lambda t: abs(self.target - t[1]))
        return 10.0 ** (best[0] / 20.0), ceiling

    def _trial(self, piece, gain_db, ceiling):
        meter = Loudness(piece.rate, piece.channels)
        threaded(lambda: piece._mastered([(10.0 ** (gain_db / 20.0), ceiling, 0.0)],
                                         fades=False),
                 lambda item: meter.push(item[1][0]))
        return meter.integrated()


def master(audio, sample_rate, loudness, true_peak_dbtp=TRUE_PEAK_DBTP,
           reverb=REVERB_WET):
    """Master a stereo mix held in memory (the streamed ``Master`` over an array).

    Args:
        audio: float32 [n, 2] (or [n]) in about [-1, 1].
        sample_rate: Hz.
        loudness: integrated loudness target, LUFS (-14 web video, -23 broadcast).
        true_peak_dbtp: ceiling for the true peak.
        reverb: wet level of the room reverb (0 = none).

    Returns:
        float32 array of the same shape, at ``loudness`` (within a fraction of a LU when
        the limiter allows) with its true peak at or below ``true_peak_dbtp``; silence stays
        silence.

    Raises:
        InputError: a target outside -70..0 LUFS or a ceiling above 0 dBTP.
        RenderError: pedalboard missing.
    """
    _check_targets(loudness, true_peak_dbtp)
    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.ndim == 1
    x = audio[:, None] if mono else audio
    with Piece(len(x), sample_rate, x.shape[1]) as piece:
        for start in range(0, len(x), BLOCK):
            piece.write(start, x[start:start + BLOCK])
        m = Master(loudness, true_peak_dbtp, reverb)
        m.solve(m.process(piece))
        out = piece.array()
    return np.ascontiguousarray(out[:, 0] if mono else out)
