"""Sliding windows over NCHW images: the view behind im2col, im2col itself and its adjoint.

For a (padded) input x of shape (N, C, H, W), a KH x KW window with stride (sh, sw) and
dilation (dh, dw) has ``OH = utils.output_size(H, KH, sh, 0, dh)`` positions per column
(likewise OW), and

    windows(x)[n, c, i, j, oh, ow] = x[n, c, oh*sh + i*dh, ow*sw + j*dw]

is a strided *view* of x (no copy, no loop). im2col is that view made contiguous in the
order the matrix product wants; col2im is its adjoint: each window element is added back
to the pixel it was read from, overlapping windows summing. ``windows_sum`` loops over
the KH*KW kernel offsets only, each step one strided whole-array addition (on the CPU the
images are shared among the threads).

The readable convolution that needs none of this is ``minidl.functional.reference.conv2d``.
"""
import numpy as np

from .. import backend
from ..backend import get_array_module
from ..utils import output_size
from . import cpu
from .elementwise import ascontiguousarray
from . import layout
from .layout import copyto, from_nhwc, nhwc

# A conv layer keeps its col matrix for the weight gradient when it is at most this big;
# a bigger one (VGG at 224 pixels: 1.8 GB for the second layer at batch 16) is copied
# again in backward instead. Set to 0 to always recompute, to float('inf') to always keep.
KEEP_COL_MAX_BYTES = 256 * 2 ** 20


def keep_col(col):
    """``col`` if keeping it for backward fits in ``KEEP_COL_MAX_BYTES``, else None."""
    return col if col.nbytes <= KEEP_COL_MAX_BYTES else None


def pad2d(x, pads, value=0.0):
    """x (N, C, H, W) padded by pads = (top, bottom, left, right) with ``value``, in x's
    memory layout."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    n, c, h, w = x.shape
    out = layout.empty((n, c, h + top + bottom, w + left + right), x.dtype,
                       get_array_module(x), layout.is_channels_last(x))
    out[:, :, :top] = value
    out[:, :, top + h:] = value
    out[:, :, top:top + h, :left] = value
    out[:, :, top:top + h, left + w:] = value
    copyto(out[:, :, top:top + h, left:left + w], x)
    return out


def windows(x, kernel, stride, dilation=(1, 1), out_size=None):
    """Strided view (N, C, KH, KW, OH, OW) of the windows of an already padded x."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = out_size or (output_size(h, kh, sh, 0, dh), output_size(w, kw, sw, 0, dw))
    s0, s1, s2, s3 = x.strides
    return backend.as_strided(x, (n, c, kh, kw, oh, ow),
                              (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw))


def windows_sum(cols, shape, stride, dilation=(1, 1)):
    """Adjoint of ``windows``: cols (N, C, KH, KW, OH, OW) summed back into zeros(shape).

    ``shape`` is the padded input's (N, C, H, W); cols may be any strided view. Its two
    leading axes are batch axes (col2im passes them as (C, N)).
    """
    n, c, kh, kw, oh, ow = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    x = get_array_module(cols).empty(shape, dtype=cols.dtype)

    def part(start, stop):  # images start..stop-1, each thread its own
        x[start:stop] = 0
        for i in range(kh):
            for j in range(kw):
                x[start:stop, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                  j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[start:stop, :, i, j]
    cpu.parallel_rows(part, cols)
    return x


def im2col(x, kernel, stride, pads, dilation):
    """col (C*KH*KW, N*OH*OW) of x (N, C, H, W):

        col[(c, i, j), (n, p, q)] = xpad[n, c, p*sh + i*dh, q*sw + j*dw]

    the strided window view (N, C, KH, KW, OH, OW) of the input zero-padded by
    pads = (top, bottom, left, right) (unequal for conv2d's padding='same' with an even
    kernel), copied once (by all CPU threads) in the order (C, KH, KW, N, OH, OW).
    """
    kh, kw = kernel
    view = windows(pad2d(x, pads), kernel, stride, dilation)
    return ascontiguousarray(view.transpose(1, 2, 3, 0, 4, 5)).reshape(x.shape[1] * kh * kw, -1)


def col2im(col, x_shape, kernel, stride, pads, dilation, out_hw, out=None):
    """Adjoint of ``im2col``: col (C*KH*KW, N*OH*OW) summed back into an (N, C, H, W) array
    (``out`` if given).

    Each entry goes back to the pixel of xpad it was read from (overlaps add up); the
    padding border, which is not part of x, is then cropped away. The sum runs on the
    (C, N, ...) axis order of col, where each of its KH*KW strided additions reads col
    contiguously; one transposing copy ends it.
    """
    n, c, h, w = x_shape
    (kh, kw), (oh, ow), (top, bottom, left, right) = kernel, out_hw, pads
    cols = col.reshape(c, kh, kw, n, oh, ow).transpose(0, 3, 1, 2, 4, 5)  # (C, N, KH, KW, ..)
    gx = windows_sum(cols, (c, n, h + top + bottom, w + left + right), stride, dilation)
    gx = gx[:, :, top:top + h, left:left + w].transpose(1, 0, 2, 3)
    if out is None:
        return ascontiguousarray(gx)
    copyto(out, gx)
    return out


# ----------------------------------------------------------------------------- NCHW, by chunks
# functional/conv.py writes its three GEMMs for the whole batch (Y = Wm @ col and so on).
# On the CPU they run a chunk of images at a time instead: each chunk's col, its product
# and the transposing copies around it made and used on one core (single-threaded BLAS)
# while they sit in its cache, the chunks shared among the threads (``cpu.each_chunk``).
# The batch's col (9x the input for a 3x3 kernel: 66 MB for AlexNet-CIFAR's conv2 at batch
# 128) then never goes out to memory, nor is it kept for backward: the weight gradient
# builds each chunk's col again, and sums the chunks' products in fixed groups (the same
# bits on any thread count). That pays while each chunk's products are long: at least
# as many columns (the chunk's output pixels) as rows (C*KH*KW or OC); shorter ones, as
# the 7x7 layers of AlexNet-CIFAR with 192-384 channels make at 8 MiB, spend more on the
# chunks' (C*KH*KW, OC) weight-gradient terms and their sum than the cache saves (384 ->
# 256: 98 -> 122 ms backward), so such a batch, a batch that fits in one chunk, and a GPU
# batch, go through as one GEMM each, as before, on all BLAS threads. Measured on 2
# cores, batch 128, forward / input gradient / weight gradient in ms (docs/performance.md):
# 3 -> 64 at 32x32 7.9/10.1/13.3 -> 6.6/7.4/7.5, 64 -> 192 at 15x15 34.4/37.5/35.8 ->
# 28.4/35.0/28.7 (1, 2, 4 MiB chunks: slower).
CHUNK_BYTES_NCHW = 8 * 2 ** 20  # of col or Y (the larger), per chunk


def image_chunks(n, pixels, rows, itemsize, xp=np):
    """(start, stop) chunks of a batch of n images, each ``pixels`` output pixels and
    ``rows`` (the larger of C*KH*KW and OC) numbers per pixel (``cpu.even_chunks``); all in
    one on a GPU or when the chunks' products would have fewer columns than rows."""
    chunks = [(0, n)] if xp is not np else \
        cpu.even_chunks(n, n * pixels * rows * itemsize, CHUNK_BYTES_NCHW)
    a, b = chunks[0]
    return chunks if (b - a) * pixels >= rows else [(0, n)]


def for_each_chunk(fn, chunks, items=None):
    """fn(start, stop) for every chunk, on the CPU threads (``cpu.each_chunk``)."""
    cpu.each_chunk(lambda i: fn(*chunks[i]), chunks, items)


def sum_over_chunks(term, chunks, shape, dtype, items=None):
    """sum of term(start, stop) over the chunks, by ``cpu.sum_by_groups``."""
    return cpu.sum_by_groups(lambda i: term(*chunks[i]), len(chunks), shape, dtype,
                             SUM_GROUPS, items)


# ----------------------------------------------------------------------------- channels last
# The same matrices for a channels-last x (kernels/layout.py): with NHWC memory the
# window of one output pixel is KH runs of KW*C contiguous numbers, so im2col lays col out
# as (N*OH*OW, KH*KW*C), one row per output pixel, and the GEMM col @ Wr gives the output
# (N*OH*OW, OC), which *is* the NHWC memory of y: no transposing copy on either side.

def im2col_nhwc(x, kernel, stride, pads, dilation):
    """col (N*OH*OW, KH*KW*C) of a channels-last x (N, C, H, W):

        col[(n, p, q), (i, j, c)] = xpad[n, c, p*sh + i*dh, q*sw + j*dw]

    (im2col's matrix transposed, its columns in (KH, KW, C) order), copied once by all
    CPU threads from the window view of the padded NHWC memory."""
    view = windows(layout.to_channels_last(pad2d(x, pads)), kernel, stride, dilation)
    view = view.transpose(0, 4, 5, 2, 3, 1)  # (N, OH, OW, KH, KW, C): NHWC memory order
    return ascontiguousarray(view).reshape(view.shape[0] * view.shape[1] * view.shape[2], -1)


def windows_sum_nhwc(col, gx, kernel, stride, dilation, out_hw):
    """The adjoint of ``im2col_nhwc`` before the crop: gx (N, HP, WP, C), the padded NHWC
    gradient, = the windows of col (N*OH*OW, KH*KW*C) added back where they were read
    (overlaps add up)."""
    (kh, kw), (oh, ow), (sh, sw), (dh, dw) = kernel, out_hw, stride, dilation
    cols = col.reshape(gx.shape[0], oh, ow, kh, kw, gx.shape[3])

    def part(start, stop):  # images start..stop-1, each thread its own
        gx[start:stop] = 0
        for i in range(kh):
            for j in range(kw):
                gx[start:stop, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                   j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[start:stop, :, :, i, j]
    cpu.parallel_rows(part, cols)


# The three GEMMs of a channels-last convolution, a few images at a time: each block of
# col is built while the last one's product runs on data still in the cache, instead of
# one (N*OH*OW, KH*KW*C) matrix that goes out to memory and comes back (9x the input:
# 425 MB for vgg-fast-cifar's first 3x3 layer at batch 512). The same numbers; measured
# on 2 cores at batch 512, the layers 24 -> 64 (31x31), 64 -> 64 and 64 -> 256 (15x15)
# took 424 -> 350, 223 -> 194 and 459 -> 450 ms forward + backward (docs/fast-cifar.md).
CHUNK_BYTES = 16 * 2 ** 20  # of col per block


def _chunks(n, bytes_per_image):
    """(start, stop) blocks of the N images, each at most CHUNK_BYTES of col."""
    return cpu.blocks(n, bytes_per_image, CHUNK_BYTES)


def conv_nhwc(x, wr, kernel, stride, pads, dilation, out_hw):
    """y rows (N*OH*OW, OC) = im2col_nhwc(x) @ wr^T for a channels-last x and the weight
    rows wr (OC, KH*KW*C), by blocks of images."""
    n, p = x.shape[0], out_hw[0] * out_hw[1]
    y = get_array_module(x).empty((n * p, wr.shape[0]), x.dtype)
    wt = wr.T
    for a, b in _chunks(n, p * wr.shape[1] * x.itemsize):
        col = im2col_nhwc(x[a:b], kernel, stride, pads, dilation)
        get_array_module(x).matmul(col, wt, out=y[a * p:b * p])
    return y


def conv_nhwc_grad_input(gy_rows, wr, x_shape, kernel, stride, pads, dilation, out_hw):
    """dL/dx (channels-last, x_shape): the windows of dL/dcol = gY @ wr summed back
    (``windows_sum_nhwc``) and cropped, by blocks of images."""
    n, c, h, w = x_shape
    top, bottom, left, right = pads
    p = out_hw[0] * out_hw[1]
    xp = get_array_module(gy_rows)
    gx = layout.empty(x_shape, gy_rows.dtype, xp, channels_last=True)
    chunks = _chunks(n, p * wr.shape[1] * gy_rows.itemsize)
    padded = xp.empty((chunks[0][1], h + top + bottom, w + left + right, c), gy_rows.dtype)
    for a, b in chunks:
        windows_sum_nhwc(gy_rows[a * p:b * p] @ wr, padded[:b - a], kernel, stride,
                          dilation, out_hw)
        copyto(nhwc(gx[a:b]), padded[:b - a, top:top + h, left:left + w])
    return gx


# The weight gradient is a product with a small result, (KH*KW*C, OC), and a long inner
# side, every output pixel of every image. OpenBLAS shares a product among its threads
# along the result's sides only, which are short here; so each of minidl's threads sums
# the products of its own images on one core (``cpu.single_threaded_blas``), from blocks of col
# that stay in the cache. The images are cut into SUM_GROUPS fixed groups, each summed
# in order and the groups added in order: the same bits on any thread count. Measured on
# 2 cores at batch 512: 24 -> 64 (31x31) 107-113 -> 84 ms, 64 -> 64 (15x15) 55 -> 47 ms,
# 64 -> 256 143 -> 134 ms.
GRAD_WEIGHT_BLOCK_BYTES = 2 ** 20  # of col per block
SUM_GROUPS = 8


def conv_nhwc_grad_weight(x, gy_rows, kernel, stride, pads, dilation, out_hw):
    """dL/dW rows (OC, KH*KW*C) = (col^T @ gY)^T summed over blocks of images (this
    orientation: up to 2x faster in OpenBLAS than gY^T @ col), by groups of images shared
    among the CPU threads (above)."""
    n, p = x.shape[0], out_hw[0] * out_hw[1]
    k = kernel[0] * kernel[1] * x.shape[1]
    xp = get_array_module(x)
    if xp is not np:  # a GPU: one stream of products, blocks of CHUNK_BYTES
        gw = xp.zeros((k, gy_rows.shape[1]), x.dtype)
        for a, b in _chunks(n, p * k * x.itemsize):
            gw += im2col_nhwc(x[a:b], kernel, stride, pads, dilation).T @ gy_rows[a * p:b * p]
        return gw.T
    blocks = cpu.blocks(n, p * k * x.itemsize, GRAD_WEIGHT_BLOCK_BYTES)

    def term(i):  # (also on one thread, OpenBLAS on one core: on 2 cores it rounds
        a, b = blocks[i]  # these sums differently)
        return im2col_nhwc(x[a:b], kernel, stride, pads, dilation).T @ gy_rows[a * p:b * p]
    return cpu.sum_by_groups(term, len(blocks), (k, gy_rows.shape[1]), x.dtype, SUM_GROUPS,
                             items=n * p * k).T


def rows(y):
    """y (N, C, H, W) as the (N*H*W, C) matrix of its NHWC memory (a view when y is
    channels-last, else after one copy)."""
    return nhwc(layout.to_channels_last(y)).reshape(-1, y.shape[1])


def from_rows(y2, n, out_hw):
    """The (N*OH*OW, OC) matrix y2 as a channels-last (N, OC, OH, OW) array (a view)."""
    return from_nhwc(y2.reshape(n, *out_hw, y2.shape[1]))
