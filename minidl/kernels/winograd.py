"""Winograd F(2x2, 3x3): a 3x3, stride-1 convolution with 2.25x fewer multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). In one dimension,
two outputs of a 3-tap correlation, y_i = sum_j g_j d_{i+j} (i = 0, 1), need 6
multiplications done directly but only 4 as

    y = A^T [ (G g) * (B^T d) ]          (d: 4 inputs, * elementwise)

    B^T = [[1, 0, -1, 0],   G = [[1,    0,   0],   A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],        [1/2, 1/2, 1/2],         [0, 1, -1, -1]]
           [0, -1, 1, 0],        [1/2,-1/2, 1/2],
           [0, 1,  0, -1]]       [0,    0,   1]]

(check: A^T[(Gg) * (B^T d)] gives g0 d0 + g1 d1 + g2 d2 and g0 d1 + g1 d2 + g2 d3). Nested
in two dimensions, a 2x2 output tile Y of a 3x3 filter g on a 4x4 input tile d is
Y = A^T [(G g G^T) * (B^T d B)] A: 16 multiplications instead of 36. Over channels the
elementwise product becomes, for each of the 16 positions xi of the 4x4 tile, a matrix
product over channels, so a convolution layer is

    V[xi] = (B^T d B)[xi]      (16, P, C)   P = N * number of 2x2 output tiles
    U[xi] = (G g G^T)[xi]      (16, K, C)
    M[xi] = V[xi] @ U[xi]^T    (16, P, K)   16 GEMMs: 16 K C P multiply-adds, where
    Y = A^T M A                             im2col's one GEMM has 9 K C (4 P) = 36 K C P

V is 4x the input (3x3 im2col's matrix is 9x). B^T d B is 24 additions of strided slices;
the filter and output transforms are small GEMMs with the Kronecker matrices
``np.kron(G, G)`` (16 x 9) and ``np.kron(A^T, A^T)`` (4 x 16).

Backward. y is bilinear in (x, w), so the gradients follow from the same identities:
dL/dw = G^T [sum over tiles of (A gY A^T) * V] G (the tile sum is again 16 GEMMs,
gM[xi] @ V[xi]^T), and dL/dx is itself a 3x3 stride-1 convolution of gy with the
weights flipped and transposed (a "full" convolution), done by ``conv2d`` again.

Rounding: the transforms only add, subtract and halve, so results agree with the direct
sum to a few ulps times the number of terms (tests: 1e-12 in float64). Only CPU arrays
of float32/float64 go this way (``applies``); everything else uses im2col.
"""
import math
import os

import numpy as np

from .. import backend
from . import cpu, layout

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)
BB, GG, AA = np.kron(BT, BT), np.kron(G, G), np.kron(AT, AT)  # 16x16, 16x9, 4x16

# ``MINIDL_WINOGRAD=0`` turns it off (every 3x3 convolution then goes through im2col)
ENABLED = os.environ.get('MINIDL_WINOGRAD', '1') != '0'
# Only convolutions with at least this many input *and* output channels: the transforms
# cost memory passes over 4x the input and 4x the output, the GEMMs save 20 of 36
# multiply-adds per output per input channel, so with few channels on either side the
# passes cost more than the GEMM saves. Measured on 2 cores at batch 512
# (docs/fast-cifar.md): whole layers 24 -> 64, 64 -> 64 and 64 -> 256 are faster by
# im2col, 256 -> 256 by Winograd; the input gradient of 64 -> 256 (a 256 -> 64
# convolution of gy) took 228 ms and 962 MiB by Winograd against 173 ms and 317 MiB by
# im2col.
MIN_CHANNELS = 128
# The images of a convolution whose V is not kept go through in chunks of this many bytes
# of V (``conv2d(keep_tiles=False)``)
CHUNK_BYTES = 32 * 2 ** 20


def applies(x, kernel, stride, pads, dilation, groups, out_channels):
    """True when a convolution of x into ``out_channels`` channels with a ``kernel``-sized
    filter can go this way: 3x3, stride 1, no dilation, one group, padding at most 2 on
    each side, at least ``MIN_CHANNELS`` input and output channels, a float32/64 x on the
    CPU. The rule is symmetric in the two channel counts, so a layer's forward and its
    input gradient (the transposed convolution, channels swapped) go the same way."""
    return (ENABLED and tuple(kernel) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1 and max(pads) <= 2
            and min(x.shape[1], out_channels) >= MIN_CHANNELS
            and x.dtype in (np.float32, np.float64)
            and not backend.on_gpu(x))


def _tiles(h, w, pads):
    """(OH, OW), (TH, TW): the output size and the number of 2x2 tiles along each axis."""
    top, bottom, left, right = pads
    oh, ow = h + top + bottom - 2, w + left + right - 2
    return (oh, ow), (math.ceil(oh / 2), math.ceil(ow / 2))


# Layout. NCHW images of 3..32 pixels make every loop over a tile's pixels a loop of a few
# elements, which is where NumPy is slowest. So the tiles are computed in (row, column, N,
# C) order, where each array operation runs over N*C contiguous numbers: x is transposed
# once on the way in and y once on the way out. V[xi] is then a (P, C) matrix with
# P = (th, tw, n), and the 16 GEMMs are M[xi] = V[xi] @ U[xi]^T, (P, K).

def _rows_first(x, pads, tiles):
    """x (N, C, H, W) as xt (HP, WP, N, C), zero-padded by pads and on the bottom/right to
    the 2 * tiles + 2 rows/columns that the 4x4 tiles at stride 2 cover."""
    n, c, h, w = x.shape
    top, _, left, _ = pads
    hp, wp = 2 * tiles[0] + 2, 2 * tiles[1] + 2
    xt = np.zeros((hp, wp, n, c), x.dtype)
    src = x.transpose(2, 3, 0, 1)[:min(h, hp - top), :min(w, wp - left)]

    def part(a, b):
        xt[top + a:top + b, left:left + src.shape[1]] = src[a:b]
    cpu.parallel_for(part, src.shape[0], x.size * 2)
    return xt


def _transform_pairs(bt):
    """For each row i of a 0/1/-1 transform matrix with two non-zeros, the ufunc and the
    two input positions: out_i = in_j (+ or -) in_k."""
    pairs = []
    for row in bt:
        (j, k) = np.flatnonzero(row)
        if row[j] == 1:
            pairs.append((np.add if row[k] == 1 else np.subtract, j, k))
        else:  # -in_j + in_k
            pairs.append((np.subtract, k, j))
    return pairs


B_PAIRS = _transform_pairs(BT)  # B^T: out0 = d0 - d2, out1 = d1 + d2, out2 = d2 - d1, ...


def input_tiles(x, pads):
    """V (16, P, C) = B^T d B of every 4x4 input tile d (stride 2) of x padded by pads,
    with P = TH * TW * N in the order (th, tw, n). The bottom/right border is padded
    further with zeros when the output size is odd (the last tile's extra row is cropped).
    B^T has two non-zeros (+-1) per row, so the transform is 8 + 16 additions of strided
    whole-array slices: rows first, then columns."""
    n, c, h, w = x.shape
    _, (th, tw) = _tiles(h, w, pads)
    xt = _rows_first(x, pads, (th, tw))
    t = np.empty((4, th, xt.shape[1], n, c), x.dtype)
    v = np.empty((4, 4, th, tw, n, c), x.dtype)

    def part(a, b):  # tile rows a..b-1
        for i, (op, j, k) in enumerate(B_PAIRS):
            op(xt[2 * a + j:2 * b + j - 1:2], xt[2 * a + k:2 * b + k - 1:2], out=t[i, a:b])
        for i in range(4):
            for jj, (op, j, k) in enumerate(B_PAIRS):
                op(t[i, a:b, j:j + 2 * tw - 1:2], t[i, a:b, k:k + 2 * tw - 1:2],
                   out=v[i, jj, a:b])
    cpu.parallel_for(part, th, v.size * 2)
    return v.reshape(16, th * tw * n, c)


def filter_tiles(w):
    """U^T (16, C, K): U = G g G^T of every 3x3 filter g of w (K, C, 3, 3), transposed for
    the GEMMs V[xi] @ U[xi]^T."""
    k, c = w.shape[:2]
    u = (GG.astype(w.dtype) @ w.reshape(k * c, 9).T).reshape(16, k, c)
    return np.ascontiguousarray(u.transpose(0, 2, 1))


def _scatter(y4, y):
    """Fill y (N, K, OH, OW) from the output tiles y4 (2, 2, TH, TW, N, K): row 2 th + r
    and column 2 tw + s of image n is y4[r, s, th, tw, n] (a tile's cropped border
    dropped). For a channels-last y (kernels/layout.py) every copy moves runs of K."""
    n = y.shape[0]

    def part(a, b):
        for r in range(2):
            for s in range(2):
                dst = y[a:b, :, r::2, s::2]
                dst[...] = y4[r, s, :dst.shape[2], :dst.shape[3], a:b].transpose(2, 3, 0, 1)
    cpu.parallel_for(part, n, y.size * 2)
    return y


def _gather(gy, tiles):
    """The adjoint of ``_scatter``: gy (N, K, OH, OW) as gY (2, 2, TH, TW, N, K), zero
    where a tile reaches past the output."""
    n, k, oh, ow = gy.shape
    th, tw = tiles
    g4 = np.zeros((2, 2, th, tw, n, k), gy.dtype)

    def part(a, b):
        for r in range(2):
            for s in range(2):
                src = gy[a:b, :, r::2, s::2]
                g4[r, s, :src.shape[2], :src.shape[3], a:b] = src.transpose(2, 3, 0, 1)
    cpu.parallel_for(part, n, gy.size * 2)
    return g4


def conv2d(x, w, pads, keep_tiles=True):
    """y = conv2d(x, w) with pads = (top, bottom, left, right), in x's memory layout, and V
    (to keep for dL/dw). Without ``keep_tiles`` V is not returned (None), and the images
    go through in chunks whose V is at most ``CHUNK_BYTES``: the same numbers with a
    fraction of the memory (the input gradient's road)."""
    n, c, h, width = x.shape
    k = w.shape[0]
    out_hw, tiles = _tiles(h, width, pads)
    y = layout.empty((n, k, *out_hw), x.dtype, channels_last=layout.is_channels_last(x))
    u = filter_tiles(w)
    limit = None if keep_tiles else CHUNK_BYTES
    v = None  # (an empty batch has no tiles)
    for a, b in cpu.blocks(n, tile_bytes(x[:1], pads), limit):
        v = input_tiles(x[a:b], pads)                          # (16, P, C)
        m = v @ u                                              # (16, P, K): the 16 GEMMs
        y4 = (AA.astype(x.dtype) @ m.reshape(16, -1)).reshape(2, 2, *tiles, -1, k)
        _scatter(y4, y[a:b])
    return y, (v if keep_tiles else None)


def tile_bytes(x, pads):
    """The size in bytes of V = input_tiles(x, pads): 16 numbers per 2x2 output tile,
    image and channel (4x x's size)."""
    _, (th, tw) = _tiles(*x.shape[2:], pads)
    return 16 * th * tw * x.shape[0] * x.shape[1] * x.dtype.itemsize


def grad_weight(x, gy, pads, v=None):
    """dL/dw (K, C, 3, 3) = G^T [sum over tiles (A gY A^T) * V] G; ``v``: the forward's V."""
    n, c, h, width = x.shape
    k = gy.shape[1]
    _, tiles = _tiles(h, width, pads)
    if v is None:
        v = input_tiles(x, pads)
    gm = (AA.T.astype(gy.dtype) @ _gather(gy, tiles).reshape(4, -1)).reshape(16, -1, k)
    gu = gm.transpose(0, 2, 1) @ v                             # (16, K, C)
    gw = GG.T.astype(gy.dtype) @ gu.reshape(16, -1)            # (9, K * C)
    return np.ascontiguousarray(gw.T).reshape(k, c, 3, 3)


def grad_input(gy, w, pads):
    """dL/dx: the "full" convolution of gy with w flipped in space and transposed in
    channels, padded by 2 - pads (so the output has x's size)."""
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return conv2d(gy, flipped, tuple(2 - p for p in pads), keep_tiles=False)[0]
