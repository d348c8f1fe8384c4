"""Memory layouts of 4-D image arrays: NCHW ("contiguous") and NHWC ("channels last").

An array always has the logical shape (N, C, H, W) and the ops index it so; what differs
is how its numbers lie in memory. PyTorch calls the two layouts ``contiguous_format`` and
``channels_last``, and so does minidl. A channels-last array is an (N, H, W, C) C-contiguous
array seen through ``.transpose(0, 3, 1, 2)``: NumPy's strides make the view behave as
(N, C, H, W) everywhere, so every op gives the same numbers in both layouts.

Why bother: in NHWC memory the C channels of one pixel are neighbours. A convolution's
windows are then runs of KW*C contiguous numbers (NCHW: runs of OW, which is 3..31 pixels
here), and the GEMM of im2col reads and writes NHWC directly, with no transposing copy
before or after (docs/fast-cifar.md measures it). The layers between convolutions
(BatchNorm, GELU, pooling) keep the layout they are given, so a network converts its
input once.
"""
import numpy as np

from .. import backend
from ..backend import get_array_module
from . import cpu

CONTIGUOUS = 'contiguous_format'
CHANNELS_LAST = 'channels_last'
FORMATS = (CONTIGUOUS, CHANNELS_LAST)


def is_channels_last(a):
    """True when a 4-D array lies in memory as NHWC and not also as NCHW (an array with
    C = 1 or H = W = 1 is both; it counts as NCHW)."""
    return (a.ndim == 4 and not a.flags.c_contiguous
            and a.transpose(0, 2, 3, 1).flags.c_contiguous)


def has_nhwc_memory(a):
    """True when a 4-D array's memory is NHWC: channels-last, or an NCHW array with C = 1 or
    H = W = 1, whose memory is the same in both orders."""
    return a.ndim == 4 and (is_channels_last(a) or a.flags.c_contiguous and (
        a.shape[1] == 1 or a.shape[2] * a.shape[3] == 1))


def nhwc(a):
    """The (N, H, W, C) view of an (N, C, H, W) array (C-contiguous for a channels-last
    one)."""
    return a.transpose(0, 2, 3, 1)


def from_nhwc(a):
    """The (N, C, H, W) view of an (N, H, W, C) array: channels-last if ``a`` is contiguous."""
    return a.transpose(0, 3, 1, 2)


def empty(shape, dtype, xp=np, channels_last=False):
    """An uninitialised (N, C, H, W) array in either layout."""
    if not channels_last:
        return xp.empty(shape, dtype)
    n, c, h, w = shape
    return from_nhwc(xp.empty((n, h, w, c), dtype))


def to_channels_last(a):
    """``a`` in the channels-last layout: itself when it is, else one copy (by all threads)."""
    if a.ndim != 4 or has_nhwc_memory(a):
        return a
    out = empty(a.shape, a.dtype, get_array_module(a), channels_last=True)
    copyto(nhwc(out), nhwc(a))
    return out


def copyto(dst, src):
    """dst[...] = src (same shape), the first axis shared among the CPU threads."""
    if backend.on_gpu(dst):
        dst[...] = src
        return

    def part(lo, hi):
        dst[lo:hi] = src[lo:hi]
    cpu.parallel_rows(part, dst)


def like(a, *others):
    """Whether ``a`` and ``others`` (arrays of one shape) can be walked as one flat run of
    memory each, element i of one matching element i of the others: all C-contiguous, or
    all channels-last. Elementwise kernels use ``flat`` on them then."""
    if a.flags.c_contiguous:
        return all(o.flags.c_contiguous for o in others)
    return is_channels_last(a) and all(is_channels_last(o) for o in others)


def flat(a):
    """A 1-D view of the memory of a C-contiguous or channels-last array (in memory order)."""
    return (nhwc(a) if is_channels_last(a) else a).reshape(-1)


def empty_like(a, dtype=None):
    """An uninitialised array of a's shape in a's layout (NCHW unless a is channels-last)."""
    return empty(a.shape, dtype or a.dtype, get_array_module(a),
                 channels_last=is_channels_last(a))
