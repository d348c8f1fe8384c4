"""Sliding windows over NCHW images: the view behind im2col, and its adjoint col2im.

For a (padded) input x of shape (N, C, H, W), a KH x KW window with stride (sh, sw) and
dilation (dh, dw) has output size

    OH = (H - dh (KH - 1) - 1) // sh + 1          (likewise OW)

and ``windows(x)[n, c, i, j, oh, ow] = x[n, c, oh*sh + i*dh, ow*sw + j*dw]``. That is a
strided *view* of x (no copy, no loop); im2col is that view made contiguous in the order
the matrix product wants. col2im is its adjoint: each window element is added back to the
pixel it was read from, overlapping windows summing. It loops over the KH*KW kernel
offsets only, each step one strided whole-array addition (the images shared among the
CPU threads, ``cpu.parallel_rows``).
"""
from .. import backend, cpu


def output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Number of window positions along one axis (PyTorch's formula, incl. ceil_mode)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:  # the last window must start inside the input
        out -= 1
    return out


def pad2d(x, pads, value=0.0):
    """x (N, C, H, W) padded by pads = (top, bottom, left, right) with ``value``."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    xp = backend.get_array_module(x)
    out = xp.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    out[:, :, :top] = value
    out[:, :, top + h:] = value
    out[:, :, top:top + h, :left] = value
    out[:, :, top:top + h, left + w:] = value
    cpu.copyto(out[:, :, top:top + h, left:left + w], x)
    return out


def windows(x, kernel, stride, dilation=(1, 1), out_size=None):
    """Strided view (N, C, KH, KW, OH, OW) of the windows of an already padded x."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = out_size or ((h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1)
    s0, s1, s2, s3 = x.strides
    return backend.as_strided(x, (n, c, kh, kw, oh, ow),
                              (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw))


def col2im(cols, shape, stride, dilation=(1, 1)):
    """Adjoint of ``windows``: cols (N, C, KH, KW, OH, OW) summed back into zeros(shape).

    ``shape`` is the padded input's (N, C, H, W); cols may be any strided view.
    """
    n, c, kh, kw, oh, ow = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = backend.get_array_module(cols)
    x = xp.empty(shape, dtype=cols.dtype)

    def add(start, stop):  # images start..stop-1, each thread its own
        x[start:stop] = 0
        for i in range(kh):
            for j in range(kw):
                x[start:stop, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                  j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[start:stop, :, i, j]
    cpu.parallel_rows(add, cols)
    return x
