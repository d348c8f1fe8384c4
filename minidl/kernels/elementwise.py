"""Elementwise kernels: ReLU, GELU and their gradients, and contiguous copies, split among
CPU threads.

NumPy runs one ufunc call on one core. The images of a batch are independent, so on the
CPU each kernel hands a slice of rows (``array[a:b]``) to each thread
(``cpu.parallel_rows``); every element is computed by the same ufunc as in one call, so
the result does not depend on the thread count. On the GPU one CuPy call does all rows.
GELU is a chain of some twenty passes: it runs them one cache-sized block at a time
(``erf.map_blocks``), so that the array crosses main memory once.
"""
import math

import numpy as np

from .. import backend
from ..backend import get_array_module
from . import cpu
from . import erf as E
from . import layout
from .layout import copyto


def relu(x):
    """y = max(x, 0), in x's dtype (a Python 0 does not promote)."""
    xp = get_array_module(x)
    if backend.on_gpu(x) or x.ndim == 0:
        return xp.maximum(x, 0)
    y = xp.empty_like(x)

    def part(a, b):
        xp.maximum(x[a:b], 0, out=y[a:b])
    cpu.parallel_rows(part, y, passes=2)
    return y


def relu_grad(gy, x):
    """gx = gy where the ReLU's input x was not <= 0, else 0 (PyTorch's threshold_backward:
    a NaN input lets gy through, and an inf or NaN gy becomes 0, not NaN, where x <= 0).

    On the CPU, as bits: gy AND a mask of all ones (keep) or all zeros (+0.0), the mask
    being [x <= 0] - 1 in unsigned integers of gy's width. A product gy * [x > 0] would be
    as fast but gives NaN for inf * 0; ``np.where`` and ``np.copyto(where=)`` are 6x
    slower."""
    xp = get_array_module(gy)
    if backend.on_gpu(gy) or gy.ndim == 0:
        return xp.where(x <= 0, gy.dtype.type(0), gy)
    gx = xp.empty_like(gy)
    bits = xp.dtype(f'u{gy.itemsize}')

    def part(a, b):
        keep = xp.less_equal(x[a:b], 0).astype(bits)      # 1 where zeroed, 0 where kept
        xp.subtract(keep, bits.type(1), out=keep)          # 0 ... or all ones
        xp.bitwise_and(gy[a:b].view(bits), keep, out=gx[a:b].view(bits))
    cpu.parallel_rows(part, gx, passes=3)
    return gx


SQRT_2_OVER_PI = math.sqrt(2 / math.pi)   # the tanh form: u = sqrt(2/pi) (x + 0.044715 x^3)
GELU_CUBIC = 0.044715
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)  # phi(x) = e^{-x^2/2} / sqrt(2 pi)


def _check_approximate(approximate):
    if approximate not in ('none', 'tanh'):
        raise ValueError(f"gelu kernel: approximate must be 'none' or 'tanh', got {approximate!r}")


def _gelu_tanh_block(x, y, z, u):
    """y = x (1 + tanh u) / 2, u = sqrt(2/pi) x (1 + 0.044715 x^2)."""
    np.multiply(x, x, out=z, dtype=z.dtype)
    np.multiply(z, SQRT_2_OVER_PI * GELU_CUBIC, out=u)
    np.add(u, SQRT_2_OVER_PI, out=u)
    np.multiply(u, x, out=u)
    np.tanh(u, out=u)
    np.add(u, 1.0, out=u)
    np.multiply(u, x, out=u)
    np.multiply(u, 0.5, out=y, casting='same_kind')


def _gelu_exact_block(x, y, cdf, *scratch):
    """y = x Phi(x)."""
    E.cdf_block(x, cdf, *scratch)
    np.multiply(x, cdf, out=y, casting='same_kind')


def _gelu_exact_keep_block(x, cdf, y, *scratch):
    """y = x Phi(x), and Phi(x) into ``cdf`` (a block of an array of the compute dtype)."""
    E.cdf_block(x, cdf, *scratch)
    np.multiply(x, cdf, out=y, casting='same_kind')


def _x_phi(x, e):
    """e = x phi(x) = x e^{-x^2/2} / sqrt(2 pi), in e's dtype."""
    np.multiply(x, -0.5, out=e, dtype=e.dtype)
    np.multiply(e, x, out=e)
    np.exp(e, out=e)
    np.multiply(e, x, out=e)
    np.multiply(e, INV_SQRT_2PI, out=e)
    return e


def _gelu_grad_from_cdf_block(gy, x, cdf, gx, e):
    """gx = gy (Phi(x) + x phi(x)) with Phi(x) given."""
    np.add(_x_phi(x, e), cdf, out=e)
    np.multiply(gy, e, out=gx, casting='same_kind')


def _gelu_tanh_grad_block(gy, x, gx, z, u, d):
    """gx = gy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)), t = tanh u."""
    np.multiply(x, x, out=z, dtype=z.dtype)
    np.multiply(z, SQRT_2_OVER_PI * GELU_CUBIC, out=u)
    np.add(u, SQRT_2_OVER_PI, out=u)
    np.multiply(u, x, out=u)
    np.tanh(u, out=u)                                      # t
    np.multiply(z, 3 * SQRT_2_OVER_PI * GELU_CUBIC, out=z)
    np.add(z, SQRT_2_OVER_PI, out=z)                       # du/dx
    np.multiply(u, u, out=d)
    np.subtract(1.0, d, out=d)                             # 1 - t^2
    np.multiply(d, z, out=d)
    np.multiply(d, x, out=d)
    np.multiply(d, 0.5, out=d)
    np.multiply(u, 0.5, out=u)
    np.add(u, 0.5, out=u)
    np.add(u, d, out=u)
    np.multiply(gy, u, out=gx, casting='same_kind')


def _gelu_exact_grad_block(gy, x, gx, cdf, e, *scratch):
    """gx = gy (Phi(x) + x phi(x))."""
    E.cdf_block(x, cdf, *scratch)
    np.add(cdf, _x_phi(x, e), out=cdf)
    np.multiply(gy, cdf, out=gx, casting='same_kind')


def gelu(x, approximate='none'):
    """y = x Phi(x), Phi(x) = (1 + erf(x/sqrt2)) / 2 (``approximate='none'``), or
    y = x (1 + tanh u) / 2, u = sqrt(2/pi) (x + 0.044715 x^3) (``'tanh'``), in x's dtype.

    On the CPU float64 is computed with erfc(-x/sqrt2) / 2 (precise for negative x too),
    float32 and float16 in float32 with erf.py's tanh form (absolute error < 1e-7 in Phi).
    gelu(+inf) = +inf, gelu(-inf) = NaN (-inf * 0), as in PyTorch.
    """
    _check_approximate(approximate)
    xp = get_array_module(x)
    dtype = E.compute_dtype(x.dtype)
    if backend.on_gpu(x):
        xc = x.astype(dtype, copy=False)
        if approximate == 'tanh':
            y = 0.5 * xc * (1 + xp.tanh(SQRT_2_OVER_PI * (xc + GELU_CUBIC * xc * xc * xc)))
        else:
            y = xc * (0.5 * E.erfc(xc * (-1 / math.sqrt(2))))
        return y.astype(x.dtype, copy=False)
    y = layout.empty_like(x)
    if approximate == 'tanh':
        E.map_blocks(_gelu_tanh_block, y, x, scratch=2, dtype=dtype)
    else:
        E.map_blocks(_gelu_exact_block, y, x, scratch=1 + E.SCRATCH[dtype], dtype=dtype)
    return y


def gelu_keeping_cdf(x):
    """(y, Phi(x)) for y = gelu(x) (``approximate='none'``): the backward then needs only
    x phi(x) (``gelu_grad(..., cdf=)``: 7 passes instead of some 25), for one more array of
    x's size (in the compute dtype) kept. CPU only; on the GPU (y, None)."""
    if backend.on_gpu(x):
        return gelu(x), None
    dtype = E.compute_dtype(x.dtype)
    y, cdf = layout.empty_like(x), layout.empty_like(x, dtype)
    E.map_blocks(_gelu_exact_keep_block, y, x, cdf, scratch=E.SCRATCH[dtype], dtype=dtype)
    return y, cdf


def gelu_grad(gy, x, approximate='none', cdf=None):
    """gx = gy * dy/dx of ``gelu(x, approximate)``, in gy's dtype:

    'none':  dy/dx = Phi(x) + x phi(x),   phi(x) = e^{-x^2/2} / sqrt(2 pi)
    'tanh':  dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2,  t = tanh u

    ``cdf``: Phi(x) as ``gelu_keeping_cdf`` kept it (CPU, 'none'), not recomputed then.
    """
    _check_approximate(approximate)
    xp = get_array_module(gy)
    dtype = E.compute_dtype(gy.dtype)
    if backend.on_gpu(gy):
        xc = x.astype(dtype, copy=False)
        if approximate == 'tanh':
            t = xp.tanh(SQRT_2_OVER_PI * (xc + GELU_CUBIC * xc * xc * xc))
            slope = 0.5 * (1 + t) + 0.5 * xc * (1 - t * t) * SQRT_2_OVER_PI * (
                1 + 3 * GELU_CUBIC * xc * xc)
        else:
            slope = 0.5 * E.erfc(xc * (-1 / math.sqrt(2))) + xc * xp.exp(-0.5 * xc * xc) * \
                INV_SQRT_2PI
        return (gy * slope).astype(gy.dtype, copy=False)
    gx = layout.empty_like(gy)
    if cdf is not None and approximate == 'none':
        E.map_blocks(_gelu_grad_from_cdf_block, gx, gy, x, cdf, scratch=1, dtype=dtype)
    elif approximate == 'tanh':
        E.map_blocks(_gelu_tanh_grad_block, gx, gy, x, scratch=3, dtype=dtype)
    else:
        E.map_blocks(_gelu_exact_grad_block, gx, gy, x, scratch=2 + E.SCRATCH[dtype],
                     dtype=dtype)
    return gx


def ascontiguousarray(array):
    """``numpy.ascontiguousarray(array)``: the array itself when it is C-contiguous, else a
    C-contiguous copy (of a transposed or strided view), made by all CPU threads."""
    xp = get_array_module(array)
    if array.flags.c_contiguous or array.ndim == 0:
        return array
    if backend.on_gpu(array):
        return xp.ascontiguousarray(array)
    out = xp.empty(array.shape, array.dtype)
    copyto(out, array)
    return out
