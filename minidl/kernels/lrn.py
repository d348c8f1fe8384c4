"""Local response normalisation kernels (formulas in ``functional.normalization``,
derivation in docs/lrn.md).

The readable version, ``reference.local_response_norm``, builds the window sum from
``size`` shifted channel slices of a zero-padded copy of x^2, and lets autograd walk back
through each. Here the forward keeps only the scale s, the backward is the closed form, and
both run in place on one slice of images per CPU thread.
"""
from ..backend import get_array_module
from ..utils import compute_dtype
from . import cpu


def window_sum(a, before, after):
    """s[:, i] = sum of a[:, j] for j = i - before ... i + after clipped to [0, C).

    Exact: a copy of a plus, for each other window offset d, a[:, i + d] added onto the
    channels i where i + d is inside [0, C) (a loop over window offsets, each step a
    whole-array addition), so there is no cancellation as with a cumulative sum.
    """
    c = a.shape[1]
    total = a.copy()
    for d in range(-before, after + 1):
        if d != 0 and abs(d) < c:
            total[:, max(0, -d):c - max(0, d)] += a[:, max(0, d):c + min(0, d)]
    return total


def lrn(x, size, alpha, beta, k):
    """(y, s): s = k + alpha * window_sum(x^2) over size//2 channels before and
    (size-1)//2 after, and y = x * s^-beta.

    For a float16 x, s is computed and returned in float32 (``utils.compute_dtype``: x^2
    overflows float16 from |x| = 256 on) and y is rounded to float16 once.
    """
    xp = get_array_module(x)
    acc = compute_dtype(x.dtype)
    scale, y = xp.empty(x.shape, acc), xp.empty_like(x)

    def part(a, b):
        xs = x[a:b].astype(acc, copy=False)  # (a copy only for float16)
        s = scale[a:b]
        s[...] = window_sum(xs * xs, size // 2, (size - 1) // 2)
        s *= alpha
        s += k
        y[a:b] = xs * s ** -beta
    cpu.parallel_rows(part, x, passes=3)
    return y, scale


def lrn_grad(x, gy, scale, size, alpha, beta):
    """gx_m = gy_m s_m^-beta - 2 alpha beta x_m sum_{i : m in W(i)} gy_i x_i s_i^(-beta-1),
    the sum over the transposed window i = m - (size-1)//2 ... m + size//2.

    Computed in the dtype of ``scale`` (float32 for a float16 x), gx rounded to x's dtype.
    """
    xp = get_array_module(x)
    gx = xp.empty_like(x)

    def part(a, b):
        s = scale[a:b]
        xs, g = x[a:b].astype(s.dtype, copy=False), gy[a:b].astype(s.dtype, copy=False)
        s_pow = s ** -beta                      # s_i^-beta
        q = g * xs                              # gy_i x_i s_i^(-beta-1)
        q *= s_pow
        q /= s
        back = window_sum(q, (size - 1) // 2, size // 2)
        back *= xs
        back *= -2.0 * alpha * beta
        xp.multiply(g, s_pow, out=q)            # q is free again: gy_m s_m^-beta
        xp.add(q, back, out=gx[a:b])
    cpu.parallel_rows(part, x, passes=2)
    return gx
