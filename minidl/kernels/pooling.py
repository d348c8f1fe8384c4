"""Pooling kernels: max pooling as a running max with a small argmax, its scatter-add
backward and gather, and average pooling.

Every kernel reads the windows through the strided view ``im2col.windows`` and loops over
the KH*KW kernel offsets only: each step is one whole-array operation on
``windows(x)[:, :, i, j]``, the slice that holds offset (i, j) of every window. On the CPU
the images are shared among the threads (each thread its own rows of every array). The
readable versions are ``reference.max_pool2d`` / ``reference.avg_pool2d``: they stack all
KH*KW offsets into one (N, C, KH*KW, OH, OW) copy and reduce it.
"""
import numpy as np

from .. import backend
from ..backend import get_array_module
from ..utils import compute_dtype
from . import cpu, layout
from .im2col import pad2d, windows, windows_sum


def lowest(dtype):
    """The padding value of max pooling: -inf (the smallest integer for integer dtypes)."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == 'f' else np.iinfo(dtype).min


def index_dtype(count):
    """The smallest unsigned integer type that holds window positions 0 .. count-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count - 1 <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def max_pool(x, kernel, stride, pads, out, track=True, dilation=(1, 1)):
    """(y, index): y[n, c, p, q] = max of window (p, q) of x padded by ``pads`` with -inf
    (taps ``dilation`` apart); index[n, c, p, q] = i*KW + j of its first maximum in
    row-major window order (a NaN wins), or None when ``track`` is False (no gradient will
    be asked for).

    A running max over the offsets k = 1 .. KH*KW-1: where offset k is strictly greater,
    index becomes k (computed as max(index, k * [v > y]), k growing).
    """
    xp = get_array_module(x)
    kh, kw = kernel
    cols = windows(pad2d(x, pads, lowest(x.dtype)), kernel, stride, dilation, out_size=out)
    channels_last = layout.is_channels_last(x)  # y and index keep x's memory layout
    y = layout.empty(x.shape[:2] + tuple(out), x.dtype, xp, channels_last)
    dtype = np.dtype(index_dtype(kh * kw))
    index = layout.empty(y.shape, dtype, xp, channels_last) if track else None
    if index is not None:
        index[...] = 0

    def part(a, b):  # images a..b-1
        best = y[a:b]
        best[...] = cols[a:b, :, 0, 0]
        better = layout.empty(best.shape, bool, xp, channels_last)  # (best's layout)
        step = layout.empty(best.shape, dtype, xp, channels_last)
        for k in range(1, kh * kw):
            v = cols[a:b, :, k // kw, k % kw]
            if index is not None:  # strictly greater: an equal value keeps the first max
                xp.greater(v, best, out=better)
                xp.multiply(better, dtype.type(k), out=step)
                xp.maximum(index[a:b], step, out=index[a:b])
            xp.maximum(best, v, out=best)  # (propagates NaN into the output)
    cpu.parallel_rows(part, cols)
    if index is not None and y.dtype.kind == 'f' and bool(xp.isnan(y).any()):
        n, c = cols.shape[:2]  # the first NaN wins: np.argmax's rule, also PyTorch's
        index = cols.reshape(n, c, kh * kw, *out).argmax(axis=2).astype(dtype)
    return y, index


def argmax_positions(index, kernel, stride, padded, dilation=(1, 1)):
    """Where each window's argmax sits in the padded input, as a flat index.

    index (N, C, OH, OW) holds k = i*KW + j; the result (N, C, OH, OW), int32 where it
    fits, is ((n*C + c)*Hp + oh*sh + i*dh)*Wp + ow*sw + j*dw, a position in the padded
    input flattened to N*C*Hp*Wp numbers.
    """
    xp = get_array_module(index)
    n, c, oh, ow = index.shape
    (kh, kw), (sh, sw), (dh, dw), (hp, wp) = kernel, stride, dilation, padded[2:]
    dtype = xp.int32 if n * c * hp * wp < 2 ** 31 else xp.int64
    corner = (xp.arange(oh, dtype=dtype) * (sh * wp)).reshape(oh, 1) + \
        xp.arange(ow, dtype=dtype) * sw                                   # (OH, OW)
    inside = xp.asarray([(k // kw) * dh * wp + (k % kw) * dw for k in range(kh * kw)],
                        dtype=dtype)
    pos = xp.take(inside, index)                  # within the window (take: 2x faster
    pos += corner                                 # than inside[index] on the CPU)
    pos += (xp.arange(n * c, dtype=dtype) * (hp * wp)).reshape(n, c, 1, 1)
    return pos


def plane_indices(index, kernel, stride, dilation, padding, width):
    """torch's ``return_indices``: where each window's argmax sits in its (unpadded) input
    plane, as the int64 flat index row*W + col, row = oh*sh - ph + i*dh and
    col = ow*sw - pw + j*dw for the stored k = i*KW + j (never in the padding: -inf loses).
    """
    xp = get_array_module(index)
    _, _, oh, ow = index.shape
    kw, (sh, sw), (dh, dw), (ph, pw) = kernel[1], stride, dilation, padding
    k = index.astype(xp.int64)
    rows = (xp.arange(oh, dtype=xp.int64) * sh - ph).reshape(oh, 1) + (k // kw) * dh
    cols = xp.arange(ow, dtype=xp.int64) * sw - pw + (k % kw) * dw
    return rows * width + cols


def max_pool_grad(gy, index, kernel, stride, padded, dilation=(1, 1)):
    """gx (shape ``padded``) = zeros with gy added at each window's argmax.

    One unbuffered scatter-add (``np.add.at``, ``cupyx.scatter_add``) of gy into the
    flattened padded gradient: a pixel that is the maximum of several overlapping windows
    accumulates all of their gradients. On the CPU each thread scatters its own images.
    """
    if tuple(stride) == tuple(kernel) and tuple(dilation) == (1, 1):
        return _max_pool_grad_tiled(gy, index, kernel, padded)
    gx = get_array_module(gy).empty(padded, dtype=gy.dtype)

    def part(a, b):
        gx[a:b] = 0
        pos = argmax_positions(index[a:b], kernel, stride, padded, dilation)
        backend.scatter_add(gx[a:b].reshape(-1), pos.reshape(-1), gy[a:b].reshape(-1))
    cpu.parallel_rows(part, gx)
    return gx


def _max_pool_grad_tiled(gy, index, kernel, padded):
    """``max_pool_grad`` for windows that tile the input (stride = kernel, no dilation):
    every pixel is in at most one window, so offset k = (i, j) of every window receives
    gy where the argmax is k, and zero elsewhere: KH*KW masked products, no scatter, and gx
    in gy's memory layout. Pixels no window reaches (floor mode) get zero."""
    xp = get_array_module(gy)
    (kh, kw), (oh, ow) = kernel, gy.shape[2:]
    gx = layout.empty(padded, gy.dtype, xp, layout.is_channels_last(gy))

    def part(a, b):
        gx[a:b, :, kh * oh:] = 0
        gx[a:b, :, :, kw * ow:] = 0
        g = gy[a:b]
        finite = bool(xp.isfinite(g).all())  # else 0 * inf = NaN: copy where, 4x slower
        mask = layout.empty(g.shape, bool, xp, layout.is_channels_last(g))
        for k in range(kh * kw):
            dst = gx[a:b, :, k // kw:kh * oh:kh, k % kw:kw * ow:kw]
            xp.equal(index[a:b], k, out=mask)
            if finite:
                xp.multiply(g, mask, out=dst)
            else:
                dst[...] = 0
                xp.copyto(dst, g, where=mask)
    cpu.parallel_rows(part, gx)
    return gx


def max_pool_gather(gx_padded, index, kernel, stride, dilation=(1, 1)):
    """ggy = gx_padded read at each window's argmax: the adjoint of ``max_pool_grad``."""
    pos = argmax_positions(index, kernel, stride, gx_padded.shape, dilation)
    return gx_padded.reshape(-1)[pos]


def avg_divisor(size, kernel, stride, padding, out, count_include_pad, divisor_override,
                like):
    """The divisor D of average pooling, torch's rule: ``divisor_override`` if given; else
    per window the number of its pixels inside the input padded by ``padding`` on both
    sides (count_include_pad) or inside the input (not count_include_pad). Along one axis
    window o covers [o*s - p, min(o*s - p + k, size + p)), and with count_include_pad=False
    that is clipped to [0, size); D[oh, ow] is the product of the two axes' counts.

    A Python number when every window has the same divisor (always with the defaults:
    KH*KW), else an (OH, OW) array in the dtype and on the device of ``like``.
    """
    if divisor_override is not None:
        return divisor_override
    counts = []
    for n, k, s, p, o in zip(size, kernel, stride, padding, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        counts.append(end - start if count_include_pad else
                      np.minimum(end, n) - np.maximum(start, 0))
    if all((c == k).all() for c, k in zip(counts, kernel)):
        return kernel[0] * kernel[1]
    divisor = np.outer(counts[0], counts[1]).astype(like.dtype)
    return backend.to_device(divisor, backend.device_of(like))


def avg_pool(x, kernel, stride, pads, out, divisor=None):
    """y = the sum of each KH x KW window of x zero-padded by ``pads``, divided by
    ``divisor`` (a number, or an (OH, OW) array: one per window; default KH*KW).

    A float16 x is summed in float32 (``utils.compute_dtype``), y rounded to float16 once.
    """
    kh, kw = kernel
    cols = windows(pad2d(x, pads, 0), kernel, stride, out_size=out)
    y = cols[:, :, 0, 0].astype(compute_dtype(x.dtype))  # a copy
    for k in range(1, kh * kw):
        y += cols[:, :, k // kw, k % kw]
    y /= kh * kw if divisor is None else divisor
    return y.astype(x.dtype, copy=False)


def avg_pool_grad(gy, kernel, stride, padded, divisor=None):
    """gx (shape ``padded``): every pixel gets gy / D from each window that reads it."""
    (kh, kw), (n, c, oh, ow) = kernel, gy.shape
    share = gy / (kh * kw if divisor is None else divisor)
    cols = get_array_module(gy).broadcast_to(share[:, :, None, None], (n, c, kh, kw, oh, ow))
    return windows_sum(cols, padded, stride)
