"""Elementwise kernels: ReLU and its gradient, and contiguous copies, split among CPU threads.

NumPy runs one ufunc call on one core. The images of a batch are independent, so on the
CPU each kernel hands a slice of rows (``array[a:b]``) to each thread
(``cpu.parallel_rows``); every element is computed by the same ufunc as in one call, so
the result does not depend on the thread count. On the GPU one CuPy call does all rows.
"""
from .. import backend
from ..backend import get_array_module
from . import cpu


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
    """gx = gy * [x > 0]: the gradient gy let through where the ReLU's input was positive."""
    xp = get_array_module(gy)
    if backend.on_gpu(gy) or gy.ndim == 0:
        return gy * (x > 0)
    gx = xp.empty_like(gy)

    def part(a, b):
        xp.multiply(gy[a:b], x[a:b] > 0, out=gx[a:b])  # float * bool stays float
    cpu.parallel_rows(part, gx, passes=3)
    return gx


def copyto(dst, src):
    """dst[...] = src (same shape), the first axis shared among the CPU threads."""
    if backend.on_gpu(dst):
        dst[...] = src
        return

    def part(a, b):
        dst[a:b] = src[a:b]
    cpu.parallel_rows(part, dst)


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
