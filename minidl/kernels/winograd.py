"""Winograd F(m x m, 3x3): a 3x3, stride-1 convolution with 2.25x (m = 2) or 4x (m = 4)
fewer multiplications.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). In one dimension,
m outputs of a 3-tap correlation, y_i = sum_j g_j d_{i+j} (i < m), need 3m multiplications
done directly but only a = m + 2 as

    y = A^T [ (G g) * (B^T d) ]          (d: a inputs, * elementwise)

For m = 2 (points 0, 1, -1 and infinity, below):

    B^T = [[-1, 0, 1, 0],   G = [[-1,   0,   0  ],   A^T = [[1, 1,  1, 0],
           [0,  1, 1, 0],        [1/2, 1/2, 1/2],         [0, 1, -1, 1]]
           [0, -1, 1, 0],        [1/2,-1/2, 1/2],
           [0, -1, 0, 1]]        [0,    0,   1  ]]

(check: A^T[(Gg) * (B^T d)] gives g0 d0 + g1 d1 + g2 d2 and g0 d1 + g1 d2 + g2 d3). Nested
in two dimensions, an m x m output tile Y of a 3x3 filter g on an a x a input tile d is
Y = A^T [(G g G^T) * (B^T d B)] A: a^2 multiplications instead of 9 m^2 (16 instead of 36
for m = 2, 36 instead of 144 for m = 4). Over channels the elementwise product becomes,
for each of the a^2 positions xi of the tile, a matrix product over channels, so a
convolution layer is

    V[xi] = (B^T d B)[xi]      (a^2, P, C)   P = N * number of m x m output tiles
    U[xi] = (G g G^T)[xi]      (a^2, K, C)
    M[xi] = V[xi] @ U[xi]^T    (a^2, P, K)   a^2 GEMMs: a^2 K C P multiply-adds, where
    Y = A^T M A                              im2col's one GEMM has 9 K C (m^2 P)

V is (a/m)^2 times the input (4x for m = 2, 2.25x for m = 4; 3x3 im2col's matrix is 9x).
Every transform is a matrix product: B^T d B as a^2 small GEMMs per tile row (rows, then
columns, on contiguous runs of N*C numbers), the filter and output transforms as one GEMM
each with the Kronecker matrices ``np.kron(G, G)`` (a^2 x 9) and ``np.kron(A^T, A^T)``
(m^2 x a^2).

Where the matrices come from (Toom-Cook, ``cook_toom``). The full linear convolution
s = g * e of the filter with m numbers e is a polynomial product s(x) = g(x) e(x) of degree
m + 1: it is fixed by its values at a - 1 points p_i and its leading coefficient (the
"point at infinity"), so s = C [(E_3 g) * (E_m e)] with E_r the evaluation matrices
(rows (1, p_i, ..., p_i^(r-1)), and (0, ..., 0, 1) at infinity) and C the inverse of E_a,
by Lagrange: s(x) = s(inf) M(x) + sum_i s(p_i) L_i(x), M(x) = prod_k (x - p_k),
L_i(x) = prod_{k != i} (x - p_k) / prod_{k != i} (p_i - p_k). The correlation y is the
transpose of that map in e, so A^T = E_m^T, G = E_3 and B^T = C^T: row i of B^T holds the
coefficients of L_i (of M for infinity). Each row of B^T is then scaled to small integers
and the matching row of G divided by the same number. m = 4 uses the points 0, 1, -1,
1/2, -2: measured in float32 on 256 -> 256 channels at 7x7, their error is 4.3e-6 of the
largest output, against 1.1e-5 for Lavin and Gray's 0, +-1, +-2 (and 9e-7 for m = 2,
6e-7 for im2col): bigger transform coefficients amplify rounding, which is why m stops at
4 (0, +-1, +-2, 3 for m = 5 gave 3e-4).

Backward. y is bilinear in (x, w), so the gradients follow from the same identities:
dL/dw = G^T [sum over tiles of (A gY A^T) * V] G (the tile sum is again a^2 GEMMs,
gM[xi] @ V[xi]^T), and dL/dx is itself a 3x3 stride-1 convolution of gy with the
weights flipped and transposed (a "full" convolution), done by ``conv2d`` again.

Rounding: tests hold the result to im2col's to 1e-12 in float64 and to 2e-5 of the
largest output in float32. inf and NaN: the transforms mix all the numbers of a tile, so
an inf in one input reaches every output of its tiles (as NaN), also where no window
holds it; ``conv2d(finite=True)`` returns None for a result that is not all finite, and
the caller (``functional/conv.py``) computes it again by im2col, as PyTorch would. Only
CPU arrays of float32/float64 go this way (``applies``); everything else uses im2col.
"""
import contextlib
import math
import os
from fractions import Fraction

import numpy as np

from .. import backend
from . import cpu, layout


def _poly_from_roots(roots):
    """Coefficients, lowest power first, of prod_k (x - roots[k])."""
    c = [Fraction(1)]
    for r in roots:
        c = [(c[k - 1] if k else 0) - r * (c[k] if k < len(c) else 0)
             for k in range(len(c) + 1)]
    return c


def _integer_scale(row):
    """The number that makes the fractions of ``row`` integers with no common factor."""
    nonzero = [v for v in row if v]
    den = math.lcm(*(v.denominator for v in nonzero))
    num = math.gcd(*(int(v * den) for v in nonzero))
    return Fraction(den, num)


def cook_toom(m, points):
    """(B^T, G, A^T) of F(m, 3) from the m + 1 finite points (and infinity), float64, exact
    up to the rounding of G (see the module docstring)."""
    p = [Fraction(v) for v in points]
    if len(p) != m + 1 or len(set(p)) != len(p):
        raise ValueError(f"cook_toom: F({m}, 3) needs {m + 1} distinct points, got {points}")
    bt, g = [], []
    for pi in p + [None]:  # None: the point at infinity
        others = [q for q in p if q != pi]
        row = _poly_from_roots(others) + [Fraction(0)] * (pi is not None)
        grow = [pi ** j / math.prod(pi - q for q in others) for j in range(3)] \
            if pi is not None else [Fraction(0), Fraction(0), Fraction(1)]
        scale = _integer_scale(row)
        bt.append([v * scale for v in row])
        g.append([v / scale for v in grow])
    at = [[q ** j for q in p] + [Fraction(int(j == m - 1))] for j in range(m)]
    return tuple(np.array([[float(v) for v in r] for r in rows]) for rows in (bt, g, at))


class Tiling:
    """F(m x m, 3x3): the transform matrices and their Kronecker squares, and the fewest
    channels (input and output) with which it beats im2col (``min_channels``)."""

    def __init__(self, m, points, min_channels):
        self.m, self.a, self.points = m, m + 2, tuple(points)
        self.min_channels = min_channels
        self.BT, self.G, self.AT = cook_toom(m, points)
        self.GG, self.AA = np.kron(self.G, self.G), np.kron(self.AT, self.AT)

    def __repr__(self):
        return f"F({self.m}x{self.m}, 3x3) at {self.points}"


# The fewest channels on both sides: the transforms cost memory passes over (a/m)^2 times
# the input and the output, the GEMMs save most of the 9 multiply-adds per output per
# input channel, so with few channels on either side the passes cost more than the GEMM
# saves. Measured on 2 cores at batch 512, float32, channels-last, forward + backward of
# one layer in ms (im2col / F(2x2) / F(4x4)): 256 -> 256 at 7x7 544 / 394 / 255,
# 64 -> 256 at 15x15 486 / 676 / 460, 256 -> 64 at 15x15 728 / 763 / 489, 64 -> 64 at
# 15x15 195 / 240 / 158, but 24 -> 64 at 31x31 352 / 800 / 484 (docs/fast-cifar.md).
F2 = Tiling(2, (0, 1, -1), min_channels=128)
F4 = Tiling(4, (0, 1, -1, Fraction(1, 2), -2), min_channels=64)
BT, G, AT = F2.BT, F2.G, F2.AT
TILINGS = {2: F2, 4: F4}

# ``MINIDL_WINOGRAD=0`` turns it off (every 3x3 convolution then goes through im2col);
# ``4`` makes F(4x4, 3x3) the default tiling instead of F(2x2, 3x3) (``1``, ``2`` or unset).
# ``tile`` chooses one for a block of code (vgg-fast-cifar trains with F(4x4)). A bad
# value is an error at the first convolution, not at ``import minidl``.
_SETTING = os.environ.get('MINIDL_WINOGRAD', '').strip()
_SETTING_ERROR = None if _SETTING in ('', '0', '1', '2', '4') else (
    f"MINIDL_WINOGRAD must be 0 (off), 1 or 2 (F(2x2), the default) or 4 (F(4x4)), "
    f"got {_SETTING!r}")
ENABLED = _SETTING != '0'
TILING = F4 if _SETTING == '4' else F2  # F(2x2): float32 error as im2col's; F(4x4): 5-10x


def check_environment():
    """Raise the ValueError of a bad ``MINIDL_WINOGRAD`` (the CLI calls it first)."""
    if _SETTING_ERROR:
        raise ValueError(_SETTING_ERROR)


def check_tile(owner, m):
    """m if it names a tiling for ``tile`` (0, 2 or 4), else a ValueError naming ``owner``."""
    if m not in (0, 2, 4) or isinstance(m, bool):
        raise ValueError(f"{owner}: winograd must be 0 (im2col), 2 or 4 (F(m x m, 3x3)), "
                         f"got {m!r}")
    return m


@contextlib.contextmanager
def tile(m):
    """Inside ``with tile(m)``, the convolutions that take the Winograd road use F(m x m,
    3x3) (m = 2 or 4), or none (m = 0: im2col); a layer's backward uses what its forward
    used, wherever it runs. Process-wide, restored on the way out.

    F(4x4) does 4x fewer multiplications than im2col (F(2x2): 2.25x) and its transforms
    touch fewer numbers, but its float32 rounding error is 5-10x im2col's (4e-6 of the
    largest output at 256 channels, against 5e-7): a speed choice, as TF32 on a GPU."""
    global TILING, ENABLED
    check_tile('winograd tile', m)
    before = TILING, ENABLED
    ENABLED = ENABLED and m != 0
    TILING = TILINGS.get(m, TILING)
    try:
        yield
    finally:
        TILING, ENABLED = before


MIN_CHANNELS = None  # an int: the same least channel count for every tiling (tests)
# The images go through in chunks of at most this many bytes of their largest array (V or
# M), each chunk all the way on one thread with single-threaded BLAS (``conv2d``): its
# arrays stay in that core's cache instead of going out to memory between the steps.
CHUNK_BYTES = 8 * 2 ** 20  # (1, 2, 4, 8, 16 MiB: 8 was fastest on 2 cores, batch 512)
CHUNK_MULTIPLE = 8


def applies(x, kernel, stride, pads, dilation, groups, out_channels):
    """True when a convolution of x into ``out_channels`` channels with a ``kernel``-sized
    filter can go this way: 3x3, stride 1, no dilation, one group, padding at most 2 on
    each side, at least ``TILING.min_channels`` input and output channels, a float32/64 x
    on the CPU. The rule is symmetric in the two channel counts, so a layer's forward and
    its input gradient (the transposed convolution, channels swapped) go the same way."""
    check_environment()
    least = TILING.min_channels if MIN_CHANNELS is None else MIN_CHANNELS
    return (ENABLED and tuple(kernel) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1 and max(pads) <= 2
            and min(x.shape[1], out_channels) >= least
            and x.dtype in (np.float32, np.float64)
            and not backend.on_gpu(x))


def _tiles(h, w, pads, m):
    """(OH, OW), (TH, TW): the output size and the number of m x m tiles along each axis."""
    top, bottom, left, right = pads
    oh, ow = h + top + bottom - 2, w + left + right - 2
    return (oh, ow), (math.ceil(oh / m), math.ceil(ow / m))


# Layout. NCHW images of 3..32 pixels make every loop over a tile's pixels a loop of a few
# elements, which is where NumPy is slowest. So the tiles are computed in (row, column, N,
# C) order, where each operation runs over N*C contiguous numbers: x is transposed
# once on the way in and y once on the way out. V[xi] is then a (P, C) matrix with
# P = (th, tw, n), and the a^2 GEMMs are M[xi] = V[xi] @ U[xi]^T, (P, K).

def _rows_first(x, pads, tiles, m):
    """x (N, C, H, W) as xt (HP, WP, N, C), zero-padded by pads and on the bottom/right to
    the m * tiles + 2 rows/columns that the tiles at stride m cover."""
    n, c, h, w = x.shape
    top, _, left, _ = pads
    hp, wp = m * tiles[0] + 2, m * tiles[1] + 2
    xt = np.zeros((hp, wp, n, c), x.dtype)
    src = x.transpose(2, 3, 0, 1)[:min(h, hp - top), :min(w, wp - left)]

    def part(a, b):
        xt[top + a:top + b, left:left + src.shape[1]] = src[a:b]
    cpu.parallel_for(part, src.shape[0], x.size * 2)
    return xt


def input_tiles(x, pads, tiling=None):
    """V (a^2, P, C) = B^T d B of every a x a input tile d (stride m) of x padded by pads,
    with P = TH * TW * N in the order (th, tw, n). The bottom/right border is padded
    further with zeros when the output size is not a multiple of m (the last tile's extra
    rows are cropped). B^T d B is B^T applied to the tile's rows, then to its columns:
    small GEMMs (a x a) @ (a x N*C) on contiguous runs of N*C numbers, on the calling
    thread (a chunk of ``conv2d`` or ``grad_weight``)."""
    t = tiling or TILING
    n, c, h, w = x.shape
    m, a = t.m, t.a
    _, (th, tw) = _tiles(h, w, pads, m)
    xt = _rows_first(x, pads, (th, tw), m).reshape(m * th + 2, m * tw + 2, n * c)
    bt = t.BT.astype(x.dtype)
    rows = np.empty((th, a, xt.shape[1], n * c), x.dtype)   # B^T d, per tile row
    v = np.empty((a, a, th, tw, n * c), x.dtype)

    for i in range(th):
        for j in range(xt.shape[1]):
            np.matmul(bt, xt[m * i:m * i + a, j], out=rows[i, :, j])
        for k in range(a):
            for j in range(tw):
                np.matmul(bt, rows[i, k, m * j:m * j + a], out=v[k, :, i, j])
    return v.reshape(a * a, th * tw * n, c)


def filter_tiles(w, tiling=None, flip=False):
    """U^T (a^2, C, K): U = G g G^T of every 3x3 filter g of w (K, C, 3, 3), transposed for
    the GEMMs V[xi] @ U[xi]^T. ``flip``: the same for the filters of the transposed
    convolution (``grad_input``), w[k, c] turned by 180 degrees with k and c swapped: g
    read backwards is the columns of G G^T (a^2 x 9) read backwards, and the swap makes the
    result (a^2, K, C) without a transposing copy. One GEMM with w's (K*C, 9) rows either
    way (the forward's after one copy of w into (C, K) order)."""
    t = tiling or TILING
    k, c = w.shape[:2]
    gg = t.GG.astype(w.dtype)
    with np.errstate(invalid='ignore', over='ignore'):  # (an inf w: conv2d's finite check)
        if flip:
            return (gg[:, ::-1] @ w.reshape(k * c, 9).T).reshape(t.a * t.a, k, c)
        wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3)).reshape(c * k, 9)
        return (gg @ wt.T).reshape(t.a * t.a, c, k)


def _scatter(ym, y, m):
    """Fill y (N, K, OH, OW) from the output tiles ym (m, m, TH, TW, N, K): row m th + r
    and column m tw + s of image n is ym[r, s, th, tw, n] (a tile's cropped border
    dropped). For a channels-last y (kernels/layout.py) every copy moves runs of K."""
    n = y.shape[0]

    def part(a, b):
        for r in range(m):
            for s in range(m):
                dst = y[a:b, :, r::m, s::m]
                dst[...] = ym[r, s, :dst.shape[2], :dst.shape[3], a:b].transpose(2, 3, 0, 1)
    cpu.parallel_for(part, n, y.size * 2)
    return y


def _gather(gy, tiles, m):
    """The adjoint of ``_scatter``: gy (N, K, OH, OW) as gY (m, m, TH, TW, N, K), zero
    where a tile reaches past the output."""
    n, k, oh, ow = gy.shape
    th, tw = tiles
    gm = np.zeros((m, m, th, tw, n, k), gy.dtype)

    def part(a, b):
        for r in range(m):
            for s in range(m):
                src = gy[a:b, :, r::m, s::m]
                gm[r, s, :src.shape[2], :src.shape[3], a:b] = src.transpose(2, 3, 0, 1)
    cpu.parallel_for(part, n, gy.size * 2)
    return gm


class KeptTiles:
    """The forward's V, chunk by chunk (``conv2d``): what ``grad_weight`` reads again."""

    def __init__(self, tiling, chunks, arrays):
        self.tiling, self.chunks, self.arrays = tiling, chunks, arrays
        self.nbytes = sum(v.nbytes for v in arrays)


def _chunks(x, pads, channels, t):
    """(start, stop) chunks of x's images, each of at most about CHUNK_BYTES of V or M (a^2
    numbers per tile, image and channel, ``channels`` the larger of C and K), as
    ``cpu.even_chunks`` cuts them."""
    _, (th, tw) = _tiles(*x.shape[2:], pads, t.m)
    total = x.shape[0] * t.a * t.a * th * tw * channels * x.dtype.itemsize
    return cpu.even_chunks(x.shape[0], total, CHUNK_BYTES, CHUNK_MULTIPLE)


def _each_chunk(fn, chunks, items):
    """fn(i) for every chunk i (``cpu.each_chunk``). An inf or a NaN is no warning here: the
    callers look for them in the results."""
    def quiet(i):
        with np.errstate(invalid='ignore', over='ignore'):
            fn(i)
    cpu.each_chunk(quiet, chunks, items)


def conv2d(x, w, pads, keep_tiles=True, tiling=None, finite=False, u=None):
    """y = conv2d(x, w) with pads = (top, bottom, left, right), in x's memory layout, and V
    (a ``KeptTiles``, to keep for dL/dw; None without ``keep_tiles``). The images go
    through in chunks (``CHUNK_BYTES``), each chunk's V, M and output tiles made and used
    on one thread while they sit in its cache. ``finite``: (None, None) instead when y
    holds an inf or a NaN (each chunk's sum is checked while it is in the cache; a
    finite y whose sum overflows counts as not finite too). ``u``: w's ``filter_tiles``
    when the caller has them (then w is only read for its shape)."""
    t = tiling or TILING
    n, c, h, width = x.shape
    k = w.shape[0]
    out_hw, tiles = _tiles(h, width, pads, t.m)
    y = layout.empty((n, k, *out_hw), x.dtype, channels_last=layout.is_channels_last(x))
    u = filter_tiles(w, t) if u is None else u
    aa = t.AA.astype(x.dtype)
    chunks = _chunks(x, pads, max(c, k), t)
    kept, ok = [None] * len(chunks), [True] * len(chunks)

    def chunk(i):
        a, b = chunks[i]
        v = input_tiles(x[a:b], pads, t)                       # (a^2, P, C)
        mt = v @ u                                             # (a^2, P, K): the GEMMs
        ym = (aa @ mt.reshape(t.a * t.a, -1)).reshape(t.m, t.m, *tiles, -1, k)
        ok[i] = not finite or bool(np.isfinite(ym.sum()))
        _scatter(ym, y[a:b], t.m)
        kept[i] = v if keep_tiles else None
    _each_chunk(chunk, chunks, y.size * t.a * t.a)
    if not all(ok):
        return None, None
    return y, (KeptTiles(t, chunks, kept) if keep_tiles else None)


def tile_bytes(x, pads, tiling=None):
    """The size in bytes of V = input_tiles(x, pads): a^2 numbers per m x m output tile,
    image and channel ((a/m)^2 times x's size)."""
    t = tiling or TILING
    _, (th, tw) = _tiles(*x.shape[2:], pads, t.m)
    return t.a * t.a * th * tw * x.shape[0] * x.shape[1] * x.dtype.itemsize


SUM_GROUPS = 8  # dL/dw is summed in this many fixed runs of chunks (cpu.sum_by_groups)


def grad_weight(x, gy, pads, v=None, tiling=None, finite=False):
    """dL/dw (K, C, 3, 3) = G^T [sum over tiles (A gY A^T) * V] G; ``v``: the forward's
    ``KeptTiles`` (which also fix the tiling and the chunks), else V is made again. G^T . G
    is linear, so each chunk's share goes through it before the sum: 9 numbers per filter
    to add instead of a^2 (36 for F(4x4)), which the sum's memory traffic is made of. The
    chunks' shares are added in SUM_GROUPS fixed groups, each in order, then the groups in
    order: the same bits on any number of threads. ``finite``: None instead of a result
    with an inf or a NaN."""
    t = v.tiling if v is not None else (tiling or TILING)
    n, c, h, width = x.shape
    k = gy.shape[1]
    _, tiles = _tiles(h, width, pads, t.m)
    chunks = v.chunks if v is not None else _chunks(x, pads, max(c, k), t)
    aat, ggt = t.AA.T.astype(gy.dtype), t.GG.T.astype(gy.dtype)

    def term(i):  # chunk i's (9, K * C) share of the sum (inf, NaN: checked below)
        a, b = chunks[i]
        with np.errstate(invalid='ignore', over='ignore'):
            vi = v.arrays[i] if v is not None else input_tiles(x[a:b], pads, t)
            gm = aat @ _gather(gy[a:b], tiles, t.m).reshape(t.m * t.m, -1)  # (a^2, P * K)
            gu = gm.reshape(t.a * t.a, -1, k).transpose(0, 2, 1) @ vi        # (a^2, K, C)
            return ggt @ gu.reshape(t.a * t.a, -1)
    gw = cpu.sum_by_groups(term, len(chunks), (9, k * c), gy.dtype, SUM_GROUPS,
                           items=gy.size * t.a * t.a)
    if finite and not np.isfinite(gw).all():
        return None
    return np.ascontiguousarray(gw.T).reshape(k, c, 3, 3)


def grad_input(gy, w, pads, tiling=None, finite=False):
    """dL/dx: the "full" convolution of gy with w flipped in space and transposed in
    channels, padded by 2 - pads (so the output has x's size); ``finite`` as ``conv2d``."""
    t = tiling or TILING
    flipped = w.transpose(1, 0, 2, 3)  # (its shape: the flip is in the tiles)
    return conv2d(gy, flipped, tuple(2 - p for p in pads), keep_tiles=False, tiling=t,
                  finite=finite, u=filter_tiles(w, t, flip=True))[0]
