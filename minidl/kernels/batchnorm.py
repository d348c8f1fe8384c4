"""Training-mode batch norm on channels-last arrays, one cache-sized block of rows at a time.

A channels-last (N, C, H, W) array is an (L, C) C-contiguous matrix
``x2 = nhwc(x).reshape(-1, C)`` (L = N*H*W pixels; an (N, C) array already is one): a
channel is a column, so batch norm's per-channel sums are column sums, ``block.sum(axis=0)``,
which NumPy runs as C-wide vector adds down the rows. x2 is cut into blocks of rows of about
``BLOCK_BYTES`` each (all the passes of a block run while it sits in the L2 cache), and the
blocks are shared among the CPU threads (``cpu.parallel_for``). Each block writes its sums
to its own row of a float64 (blocks, C) array, added up in block order afterwards: the
blocks do not depend on the thread count, so neither do the results.

Everything is computed in the compute dtype of x (float32 for float16, ``utils.compute_dtype``)
and rounded once into the output. On CuPy arrays the whole array is one block (no threads).
"""
import numpy as np

from ..backend import get_array_module
from ..utils import compute_dtype
from . import cpu

BLOCK_BYTES = 1 << 18  # bytes per block of each array; a pass touches up to five of them


def _blockwise(fn, x2, sums=0, scratch=0, passes=2):
    """Call ``fn(rows, *sum_rows, *scratch_blocks)`` for every block of rows of x2 (L, C)
    (``rows``: a slice), the blocks shared among the CPU threads. Each thread has
    ``scratch`` (rows, C) arrays of the compute dtype; fn writes its block's per-channel
    sums into the ``sums`` length-C rows it is given. Returns those sums added over the
    blocks (float64). ``passes``: about how many passes over x2 the work costs."""
    xp = get_array_module(x2)
    length, c = x2.shape
    acc = compute_dtype(x2.dtype)
    rows = max(1, BLOCK_BYTES // (c * acc.itemsize)) if xp is np else length
    blocks = -(-length // rows)
    partial = [xp.empty((blocks, c), np.float64) for _ in range(sums)]

    def part(start, stop):
        tmp = [xp.empty((min(rows, length), c), acc) for _ in range(scratch)]
        for k in range(start, stop):
            lo, hi = k * rows, min(k * rows + rows, length)
            fn(slice(lo, hi), *(p[k] for p in partial), *(t[:hi - lo] for t in tmp))
    cpu.parallel_for(part, blocks, items=x2.size * passes, xp=xp)
    return [p.sum(axis=0) for p in partial]


def channel_stats(x2, eps):
    """Per column of x2 (L, C), in the compute dtype:

        mean = sum(x) / L,   var = sum((x - mean)^2) / L (biased),   inv_std = 1 / sqrt(var + eps)

    Two passes (the mean first), so that float32 does not cancel as E[x^2] - mean^2 would."""
    xp, acc, length = get_array_module(x2), compute_dtype(x2.dtype), x2.shape[0]

    def total(rows, s):
        s[...] = x2[rows].sum(axis=0, dtype=acc)

    def squares(rows, s, d):
        xp.subtract(x2[rows], mean, out=d)
        xp.multiply(d, d, out=d)
        s[...] = d.sum(axis=0)
    mean = (_blockwise(total, x2, sums=1, passes=1)[0] / length).astype(acc)
    var = (_blockwise(squares, x2, sums=1, scratch=1)[0] / length).astype(acc)
    return mean, var, 1.0 / xp.sqrt(var + eps)


def normalize(x2, mean, scale, shift, out2):
    """out2 = (x2 - mean) * scale + shift per column (shift None: no shift), computed in
    mean's dtype and rounded once into out2 (float16 for a float16 x)."""
    xp, cast = get_array_module(x2), out2.dtype != mean.dtype

    def block(rows, *tmp):
        o = out2[rows]
        t = tmp[0] if cast else o
        xp.subtract(x2[rows], mean, out=t)
        xp.multiply(t, scale, out=o if shift is None else t)
        if shift is not None:
            xp.add(t, shift, out=o)
    _blockwise(block, x2, scratch=int(cast))


def grad_sums(x2, gy2, mean):
    """(sum(gy), sum(gy * (x - mean))) per column of x2, gy2 (L, C), in mean's dtype."""
    xp = get_array_module(x2)

    def block(rows, s_gy, s_dot, d):
        g = gy2[rows]
        s_gy[...] = g.sum(axis=0, dtype=mean.dtype)
        xp.subtract(x2[rows], mean, out=d)
        xp.multiply(d, g, out=d)
        s_dot[...] = d.sum(axis=0)
    return tuple(s.astype(mean.dtype) for s in _blockwise(block, x2, sums=2, scratch=1))


def grad_input(x2, gy2, mean, a, b, c, out2):
    """out2 = (x2 - mean) * a + gy2 * b + c with per-channel a, b, c, computed in mean's
    dtype and rounded once into out2."""
    xp, cast = get_array_module(x2), out2.dtype != mean.dtype

    def block(rows, s, *tmp):
        o = out2[rows]
        t = tmp[0] if cast else o
        xp.subtract(x2[rows], mean, out=t)
        xp.multiply(t, a, out=t)
        xp.multiply(gy2[rows], b, out=s)
        xp.add(t, s, out=t)
        xp.add(t, c, out=o)
    _blockwise(block, x2, scratch=1 + cast, passes=3)
