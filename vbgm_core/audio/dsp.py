"""Block-wise measurement and limiting: BS.1770 loudness, true peak, a look-ahead limiter.

Every object here takes a piece a block at a time (float32 ``[n, channels]``) and carries its
filter state between blocks, so a piece of any length is measured or limited in one block of
memory, and the result does not depend on how the piece was cut into blocks.

- ``Loudness``: ITU-R BS.1770-4 integrated loudness. The K-weighting is pedalboard's
  (JUCE's) high shelf (1500 Hz, +4 dB, Q 1/sqrt 2) and two first-order 38 Hz high-passes,
  whose product is pyloudnorm's Q 0.5 high-pass exactly (the bilinear transform of
  ``(s / (s + w))**2``); their state is carried with ``reset=False``. The squares are summed per
  100 ms as they come; the 400 ms gating blocks (75 % overlap) are four consecutive sums, so
  the gate needs ~0.3 KB per minute. Same value as ``pyloudnorm.Meter.integrated_loudness``
  (tests/test_stream.py: within 0.01 LU), without importing scipy.signal (~1 s).
- ``TruePeak``: 4x oversampling with the polyphase filter ``scipy.signal.resample_poly(x, 4, 1)``
  uses (81 taps, Kaiser beta 5), the last 20 input samples carried; float32. Same value as the
  whole-signal float64 ``resample_poly`` to ~1e-6 dB.
- ``Limiter``: a look-ahead, linked-stereo peak limiter driven by the true-peak envelope
  (``TruePeak.envelope``): the gain reaches each over's reduction before it and holds it a
  little around it (so the oversampled peak of the output is the limited one), then releases
  exponentially. pedalboard's ``Limiter`` (JUCE's dsp::Limiter) is two compressors with a
  make-up gain, neither look-ahead nor true-peak, and its state cannot be queried or fed an
  envelope: it does not serve, hence this one.
"""

import math

import numpy as np

OVERSAMPLE = 4
_HALF = 10 * OVERSAMPLE        # resample_poly: 2 * 10 * max(up, down) + 1 taps
_TAPS = 20                     # taps per inter-sample phase (81 // 4)
_DELAY = 10                    # the filter's delay at the input rate
GATE_ABSOLUTE = -70.0          # BS.1770 absolute gate, LUFS
GATE_RELATIVE = -10.0          # relative gate, LU under the ungated mean


def _phases():
    m = np.arange(2 * _HALF + 1) - _HALF
    h = 0.25 * np.sinc(0.25 * m) * np.kaiser(2 * _HALF + 1, 5.0)
    h = h / h.sum() * OVERSAMPLE
    # phase r holds taps h[r::4]; phase 0 is the input itself (times h[40]) up to ~1e-17 taps
    inter = np.stack([h[r::OVERSAMPLE][:_TAPS] for r in range(1, OVERSAMPLE)])   # (3, 20)
    return float(h[_HALF]), inter.astype(np.float32)


_CENTRE, _INTER = _phases()
_CHUNK = 32                    # outputs per row of the banded matrix product below


def _banded():
    """The three inter-sample phases as one matrix: a row of ``_CHUNK + 19`` consecutive
    inputs times it gives the ``3 * _CHUNK`` phase outputs of its last ``_CHUNK`` samples (a
    polyphase FIR as one BLAS product per block: ~300 flops a sample, ~0.1 s a minute)."""
    t = np.zeros((_CHUNK + _TAPS - 1, 3 * _CHUNK), np.float32)
    for q in range(3):
        for k in range(_CHUNK):
            for i in range(_TAPS):
                t[k + _TAPS - 1 - i, q * _CHUNK + k] = _INTER[q, i]
    return t


_BANDED = _banded()


def db(x):
    """Linear amplitude → dB (0 → -inf)."""
    x = float(x)
    return 20.0 * math.log10(x) if x > 0 else -math.inf


class TruePeak:
    """Running true peak (4x oversampled) of a stream of float blocks ``[n, channels]``.

    ``push`` returns, for the stream's samples as they become complete (10 samples behind),
    the envelope: per sample ``m``, the largest magnitude over the channels of the signal and
    its three interpolated values between ``m`` and ``m + 1``. ``finish`` returns the last 10.
    ``peak`` is the largest value seen (linear).
    """

    def __init__(self, channels=2):
        self.ctx = np.zeros((_TAPS, channels), np.float32)
        self.peak = 0.0
        self._skip = _DELAY     # envelope values before the stream's first sample

    def push(self, block):
        block = np.asarray(block, np.float32)
        block = block[:, None] if block.ndim == 1 else block
        n = len(block)
        if n == 0:
            return np.zeros(0, np.float32)
        z = np.concatenate([self.ctx, block])
        env = self._envelope(z, n)
        self.ctx = z[-_TAPS:].copy()
        if self._skip:
            cut = min(self._skip, len(env))
            env, self._skip = env[cut:], self._skip - cut
        if len(env):
            self.peak = max(self.peak, float(env.max()))
        return env

    def finish(self):
        """Flush the filter (zeros after the stream): the envelope of the last samples."""
        skip = self._skip
        env = self.push(np.zeros((_DELAY, self.ctx.shape[1]), np.float32))
        return env[: max(0, _DELAY - skip)] if skip else env

    @staticmethod
    def _envelope(z, n):
        """Outputs for z-indices ``[20, 20 + n)``: sample ``M - 10`` and the three positions
        after it; max over phases and channels."""
        rows = -(-n // _CHUNK)
        width = _CHUNK + _TAPS - 1
        zt = np.zeros((z.shape[1], rows * _CHUNK + width - _CHUNK), np.float32)
        zt[:, :len(z) - 1] = z[1:].T        # window c starts at z-index 1 + c * _CHUNK
        stride = zt.strides
        windows = np.lib.stride_tricks.as_strided(
            zt, (zt.shape[0], rows, width), (stride[0], _CHUNK * stride[1], stride[1]))
        windows = windows.reshape(-1, width)
        out = np.empty((len(windows), 3 * _CHUNK), np.float32)      # (ch * rows, 3 * chunk)
        # small products: OpenBLAS keeps them on one thread (large ones spin a second
        # thread for little gain; this core's neighbour is busy with the pipeline's other half)
        for i in range(0, len(windows), 128):
            np.matmul(windows[i:i + 128], _BANDED, out=out[i:i + 128])
        np.abs(out, out=out)
        # (numpy's reductions over short strided axes are slow: pairwise maxima instead)
        out = np.maximum(np.maximum(out[:, :_CHUNK], out[:, _CHUNK:2 * _CHUNK]),
                         out[:, 2 * _CHUNK:]).reshape(zt.shape[0], -1)
        env = out[0, :n]
        centre = np.abs(z[_TAPS - _DELAY:_TAPS - _DELAY + n, 0])
        for c in range(1, zt.shape[0]):
            env = np.maximum(env, out[c, :n])
            centre = np.maximum(centre, np.abs(z[_TAPS - _DELAY:_TAPS - _DELAY + n, c]))
        return np.maximum(env, centre * np.float32(_CENTRE))


class Loudness:
    """Running BS.1770-4 integrated loudness of a stream of blocks ``[n, channels]``."""

    def __init__(self, sample_rate, channels=2):
        import pedalboard as pb

        self.rate = int(sample_rate)
        self.channels = channels
        self.k = pb.Pedalboard([pb.HighShelfFilter(1500.0, 4.0, 1 / math.sqrt(2)),
                                pb.HighpassFilter(38.0), pb.HighpassFilter(38.0)])
        self.n = 0
        self.sums = []                      # per 100 ms: sum of K-weighted squares per channel
        self.partial = np.zeros(channels)   # the 100 ms step being filled
        self._next = self._bound(1)

    def _bound(self, k):
        """Start of the k-th 100 ms step, as pyloudnorm places its block bounds."""
        return int(0.4 * (k * 0.25) * self.rate)

    def push(self, block):
        block = np.asarray(block, np.float32)
        block = block[:, None] if block.ndim == 1 else block
        n = len(block)
        if n == 0:
            return
        y = self.k(np.ascontiguousarray(block.T), self.rate, reset=False)
        sq = np.square(y, out=y)       # float32 squares; their sums in float64 below
        cuts = []
        while self._next < self.n + n:
            cuts.append(self._next - self.n)
            self._next = self._bound(len(self.sums) + len(cuts) + 1)
        if cuts:
            seg = np.add.reduceat(sq, [0] + cuts if cuts[0] > 0 else cuts, axis=1,
                                  dtype=np.float64)
            if cuts[0] > 0:
                first, rest = seg[:, 0], seg[:, 1:]
            else:
                first, rest = np.zeros(self.channels), seg
            self.sums.append(self.partial + first)
            self.sums.extend(rest[:, :-1].T)
            self.partial = rest[:, -1].copy()
        else:
            self.partial = self.partial + sq.sum(axis=1, dtype=np.float64)
        self.n += n

    def integrated(self):
        """Integrated loudness in LUFS; -inf for silence or under 0.4 s."""
        if self.n < int(0.4 * self.rate):
            return -math.inf
        sums = np.array(self.sums + [self.partial] + [np.zeros(self.channels)] * 4)
        n_blocks = int(np.round((self.n / self.rate - 0.4) / 0.1)) + 1
        z = sum(sums[i:i + n_blocks] for i in range(4)) / (0.4 * self.rate)  # (blocks, ch)
        power = z.sum(axis=1)
        with np.errstate(divide="ignore"):
            blocks = -0.691 + 10.0 * np.log10(power)
        gated = power[blocks >= GATE_ABSOLUTE]
        if not len(gated):
            return -math.inf
        relative = -0.691 + 10.0 * math.log10(gated.mean()) + GATE_RELATIVE
        gated = power[(blocks > relative) & (blocks > GATE_ABSOLUTE)]
        return -0.691 + 10.0 * math.log10(gated.mean()) if len(gated) and gated.mean() > 0 \
            else -math.inf


def _sliding_max(x, width):
    """``out[i] = max(x[i:i + width])`` for ``i`` in ``[0, len(x) - width]`` (log-step)."""
    out, span = x, 1
    while span * 2 <= width:
        out = np.maximum(out[:-span], out[span:])
        span *= 2
    if span < width:
        m = len(x) - width + 1
        out = np.maximum(out[:m], out[width - span:width - span + m])
    return out[:len(x) - width + 1]


class Limiter:
    """Look-ahead peak limiter on a true-peak envelope (linked channels).

    For a drive gain ``g`` and the envelope ``env`` of the signal (``TruePeak``), each sample's
    required reduction is ``D = max(0, dB(g * env) - ceiling)``. The gain reduction is ``D``
    held over ``[m - hold, m + lookahead + hold)`` (a sliding maximum), released exponentially
    (time constant ``release_s``), then averaged over ``lookahead`` samples: it ramps down over
    the look-ahead before an over and is flat at its full value ``hold`` samples on both
    sides, wider than the oversampling filter, so the output's inter-sample peaks are limited
    too. Stateful: blocks in order; ``gains`` needs the envelope ``pad`` samples beyond the
    block on both sides (zeros outside the piece).
    """

    def __init__(self, ceiling_db, sample_rate, lookahead_s=0.0015, hold=16, release_s=0.1):
        self.ceiling = 10.0 ** (ceiling_db / 20.0)
        self.look = max(1, round(lookahead_s * sample_rate))
        self.hold = hold
        self.pad = self.look + hold
        self.decay = math.exp(-1.0 / (release_s * sample_rate))
        self.released = 0.0                       # reduction (dB) at the last sample
        self.tail = np.zeros(self.look - 1)       # the last look - 1 released reductions
        self.max_reduction_db = 0.0

    def gains(self, env_padded, g):
        """Linear gains for a block of ``len(env_padded) - 2 * pad`` samples."""
        n = len(env_padded) - 2 * self.pad
        ratio = np.asarray(env_padded, np.float64) * (g / self.ceiling)
        over = ratio > 1.0
        if not over.any() and self.released < 1e-9 and not self.tail.any():
            return np.ones(n, np.float32)
        need = np.zeros(len(ratio))
        need[over] = 20.0 * np.log10(ratio[over])
        held = _sliding_max(need, self.look + 2 * self.hold)[self.look:self.look + n]
        # exponential release: r[k] = max(held[k], decay * r[k - 1]), vectorised in steps
        # short enough that decay ** -k stays far from overflow
        released = np.empty(n)
        step = 8192
        grow = self.decay ** -np.arange(1, step + 1, dtype=np.float64)
        for i in range(0, n, step):
            h = held[i:i + step]
            g = grow[:len(h)]
            released[i:i + len(h)] = np.maximum(np.maximum.accumulate(h * g), self.released) / g
            self.released = float(released[i + len(h) - 1])
        ext = np.concatenate([self.tail, released])
        csum = np.concatenate([[0.0], np.cumsum(ext)])
        smooth = np.maximum((csum[self.look:] - csum[:-self.look]) / self.look, 0.0)
        self.tail = ext[len(ext) - (self.look - 1):] if self.look > 1 else self.tail
        self.max_reduction_db = max(self.max_reduction_db, float(smooth.max(initial=0.0)))
        return np.power(10.0, -smooth / 20.0).astype(np.float32)
