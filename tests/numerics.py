"""Tolerances from the arithmetic, for tests that compare two float32 computations.

Two computations of the same float32 maths may differ in the last bits wherever the BLAS, the
vector unit or the thread count changes the order of a sum (MKL vs OpenBLAS, AVX-512 vs AVX2 vs
scalar kernels, `MKL_CBWR`, 1 or 2 threads). A fixed ``atol=1e-6`` passes on one machine and
fails on the next; these helpers size the tolerance from what is summed instead.

The bound (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1 and §4.2):
a float32 sum of n terms (a dot product, a running state), in any order and with or without
FMA, is within ``gamma(n) * sum(|term_i|)`` of the exact sum, with ``gamma(n) = n*u/(1-n*u)``
and ``u = 2**-24`` float32's unit roundoff (underflow aside: flush-to-zero, which CMT.start
sets, adds at most 2**-126 an operation). Two computations that each meet that bound differ
by at most twice it. The magnitudes ``sum(|term_i|)`` are computed in float64 from the same
inputs, so the tolerance follows the data (and grows with the number of summed steps) instead
of being one number for every element.

tests/test_numerics_portable.py re-runs the float-sensitive tests under other arithmetic.
"""

import torch

U32 = 2.0 ** -24          # unit roundoff of float32 (round to nearest)


def gamma(n, u=U32):
    """Higham's gamma_n = n*u / (1 - n*u): the relative error bound of n roundings in a row."""
    assert n * u < 0.5, n
    return n * u / (1 - n * u)


def assert_within(actual, expected, bound, msg=""):
    """``|actual - expected| <= bound`` elementwise (``bound``: a tensor that broadcasts, or a
    float); the message names the worst element, its error and its bound."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, (msg, actual.shape, expected.shape)
    err = (actual.double() - expected.double()).abs()
    bound = torch.as_tensor(bound, dtype=torch.float64).expand_as(err)
    ratio = err / bound
    worst = int(ratio.flatten().argmax()) if ratio.numel() else 0
    if ratio.numel() and not bool((err <= bound).all()):
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), err.shape))
        raise AssertionError(
            f"{msg}: {int((err > bound).sum())} of {err.numel()} elements outside the bound; "
            f"worst at {index}: |{actual.flatten()[worst].item()!r} - "
            f"{expected.flatten()[worst].item()!r}| = {err.flatten()[worst].item():.3g} > "
            f"{bound.flatten()[worst].item():.3g} (x{ratio.flatten()[worst].item():.3g})")


def row_tolerance(want, n, safety):
    """Tolerance for a float32 result ``want [..., N]`` at the end of a chain whose longest sum
    has ``n`` terms of the row's magnitude (e.g. a recurrent state summed over n tokens):
    ``safety * gamma(n) * max|want|`` per row (the last dimension).

    For whole models, whose inner sums cannot all be tracked: the row's largest element stands
    in for the terms' magnitude (LayerNorm and the linear heads keep it O(1)), and ``safety``
    counts the float32 stages in series that each add their own share (see the caller).
    """
    scale = want.detach().abs().amax(-1, keepdim=True).double()
    return safety * gamma(n) * scale
