"""Readable reference versions of eight fast ops, written only with differentiable Tensor ops.

Each function has the signature and defaults of the op of the same name in
``minidl.functional`` and computes the same numbers, but says only the forward math: pads,
strided slices, matmuls, sums. Its backward is whatever autograd derives from that graph.
tests/test_reference.py (gelu: tests/test_gelu.py) checks in float64 that fast and reference
agree, in values and in every input gradient, to 1e-10. They are slow and hungry (every
slice is a node and a copy): read them and test against them, don't train with them.

Argument checking is the fast ops' job. Here there are only the checks without which a bad
argument would give a wrong answer instead of an error.

What the fast version changes, and why:

* conv2d (conv.py): im2col copies every window once into a matrix and does one GEMM per
  group instead of KH*KW small matmuls; backward is hand-written (a transposed GEMM and
  col2im) instead of a graph of KH*KW slices, pads and products; the col matrix is kept
  for dW instead of being copied again.
* max_pool2d (pooling.py): a running max over the kernel offsets, which stores one uint8
  argmax per output instead of a stacked (N, C, KH*KW, OH, OW) copy, and a backward that
  is one scatter-add.
* avg_pool2d (pooling.py): a running sum forward and a col2im backward, with no stacked
  copy and no graph.
* local_response_norm (normalization.py): a fused forward that keeps only the scale s,
  and a closed-form backward (docs/lrn.md) instead of a graph of about ``size`` nodes.
* batch_norm (normalization.py): in training, one fused Function that stores two
  per-channel vectors (mean, 1/std) instead of a graph holding several x-sized arrays.
* softmax_cross_entropy (loss.py): fused; the gradient p - q comes in closed form.
* linear (math.py's Linear): one Function, so dW comes out as one contiguous (out, in)
  array (not the transpose of a matmul result) and the bias is added in place.
* gelu (activation.py): one Function that keeps only x, instead of a graph of about six
  nodes holding x-sized arrays; Phi, and in backward Phi + x phi, are computed one
  cache-sized block at a time by the kernels (elementwise.py, erf.py). Here erf is the one
  primitive that is not a generic op: a small Function around the erf kernel.
"""
import math

import numpy as np

from .. import backend
from .. import functional as F
from ..kernels import erf as erf_kernel
from ..tensor import Function, Tensor
from ..utils import output_size, pair
from .conv import _pads as conv_pads


def _check(ok, message):
    if not ok:
        raise ValueError(message)


# ----------------------------------------------------------------------------- conv, pooling
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] * xpad[n, gC/G + c, p sh + i dh,
    q sw + j dw], where xpad is x zero-padded and g = o // (OC/G) is the group of o.

    For each group and each kernel offset (i, j), the strided slice of xpad read at that
    offset, (N, C/G, OH, OW), is multiplied over its channels by W[group, :, i, j].
    ``padding='same'`` pads d (k - 1) // 2 on top/left and the rest at the bottom/right
    (``conv._pads``); an unbatched x (C, H, W) is a batch of one.
    """
    if x.ndim == 3:
        y = conv2d(x.reshape(1, *x.shape), weight, bias, stride, padding, dilation, groups)
        return y.reshape(*y.shape[1:])
    sh, sw = pair('conv2d', 'stride', stride, 1)
    dh, dw = pair('conv2d', 'dilation', dilation, 1)
    n, c, h, w = x.shape
    oc, cg, kh, kw = weight.shape
    top, bottom, left, right = conv_pads(padding, (kh, kw), (sh, sw), (dh, dw))
    _check(c == cg * groups and oc % groups == 0, f"conv2d: input {x.shape}, weight "
           f"{weight.shape} and groups={groups} do not fit together")
    oh = output_size(h + top + bottom, kh, sh, 0, dh)
    ow = output_size(w + left + right, kw, sw, 0, dw)
    _check(oh > 0 and ow > 0, f"conv2d: kernel {(kh, kw)} does not fit the input {x.shape}")
    xpad, og = F.pad(x, (left, right, top, bottom)), oc // groups

    def patch(g, i, j):  # (N, C/G, OH*OW): channel group g read at kernel offset (i, j)
        rows, cols = slice(i * dh, i * dh + oh * sh, sh), slice(j * dw, j * dw + ow * sw, sw)
        return xpad[:, g * cg:(g + 1) * cg, rows, cols].reshape(n, cg, oh * ow)

    y = F.concat([sum(weight[g * og:(g + 1) * og, :, i, j] @ patch(g, i, j)
                      for i in range(kh) for j in range(kw))
                  for g in range(groups)], axis=1)
    y = y.reshape(n, oc, oh, ow)
    return y if bias is None else y + bias.reshape(1, oc, 1, 1)


def _unbatched(op, x, *args, **options):
    """op on an unbatched x (C, H, W), as a batch of one returned without the batch axis
    (also each Tensor of a tuple result: max_pool2d's indices)."""
    y = op(x.reshape(1, *x.shape), *args, **options)
    return tuple(t.reshape(*t.shape[1:]) for t in y) if isinstance(y, tuple) else \
        y.reshape(*y.shape[1:])


def _pool_geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """kernel, stride, padding, dilation, output size and (top, bottom, left, right)
    padding of a pooling: the bottom/right get what the last window needs."""
    kh, kw = pair(op, 'kernel_size', kernel_size, 1)
    sh, sw = (kh, kw) if stride is None else pair(op, 'stride', stride, 1)
    ph, pw = pair(op, 'padding', padding, 0)
    dh, dw = pair(op, 'dilation', dilation, 1)
    h, w = x.shape[2:]
    _check(ph <= kh // 2 and pw <= kw // 2, f"{op}: padding must be at most half the kernel")
    oh = output_size(h, kh, sh, ph, dh, ceil_mode)
    ow = output_size(w, kw, sw, pw, dw, ceil_mode)
    _check(oh > 0 and ow > 0, f"{op}: kernel {(kh, kw)} does not fit the input {x.shape}")
    bottom = max(ph, (oh - 1) * sh + dh * (kh - 1) + 1 - h - ph)
    right = max(pw, (ow - 1) * sw + dw * (kw - 1) + 1 - w - pw)
    return (kh, kw), (sh, sw), (dh, dw), (oh, ow), (ph, bottom, pw, right)


def _stack(xpad, kernel, stride, dilation, out):
    """(N, C, KH*KW, OH, OW): the KH*KW strided slices of the padded xpad, one per kernel
    offset (i, j): slice k = i*KW + j holds xpad[n, c, p sh + i dh, q sw + j dw]."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    return F.concat([xpad[:, :, None, i * dh:i * dh + oh * sh:sh, j * dw:j * dw + ow * sw:sw]
                     for i in range(kh) for j in range(kw)], axis=2)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """y[n, c, p, q] = max_{i<KH, j<KW} xpad[n, c, p sh + i dh, q sw + j dw], xpad = x
    padded with -inf (so padding never wins).

    Ties (e.g. a window of ReLU zeros): ``Tensor.max`` shares the gradient equally among
    the maxima, where the fast op gives all of it to the first one, as PyTorch does.
    return_indices: the map of plane positions h*W + w, read through the same windows at
    each window's (first) argmax.
    """
    if x.ndim == 3:
        return _unbatched(max_pool2d, x, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices)
    kernel, stride, dilation, out, (top, bottom, left, right) = _pool_geometry(
        'max_pool2d', x, kernel_size, stride, padding, dilation, ceil_mode)
    windows = _stack(F.pad(x, (left, right, top, bottom), -np.inf), kernel, stride, dilation,
                     out)
    y = windows.max(axis=2)
    if not return_indices:
        return y
    xp = backend.get_array_module(x.data)
    h, w = x.shape[2:]
    plane = Tensor(xp.arange(h * w, dtype=np.float64).reshape(1, 1, h, w))
    positions = _stack(F.pad(plane, (left, right, top, bottom), -1.0), kernel, stride,
                       dilation, out).data                       # (1, 1, KH*KW, OH, OW)
    k = F.argmax(windows, axis=2).data[:, :, None]               # (N, C, 1, OH, OW)
    positions = xp.broadcast_to(positions, windows.shape)
    return y, Tensor(xp.take_along_axis(positions, k, axis=2)[:, :, 0].astype(np.int64))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """y[n, c, p, q] = 1/D[p, q] sum_{i<KH, j<KW} xpad[n, c, p sh + i, q sw + j], xpad = x
    padded with zeros.

    D = divisor_override if given, else the window sums of a mask of ones over the input
    (count_include_pad=False) or over the input with its ``padding`` on every side
    (count_include_pad=True; zeros only where ceil-mode windows overhang beyond that):
    KH*KW for every window with the defaults.
    """
    if x.ndim == 3:
        return _unbatched(avg_pool2d, x, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)
    kernel, stride, dilation, out, (top, bottom, left, right) = _pool_geometry(
        'avg_pool2d', x, kernel_size, stride, padding, 1, ceil_mode)
    total = _stack(F.pad(x, (left, right, top, bottom), 0.0), kernel, stride, dilation,
                   out).sum(axis=2)
    if divisor_override is not None:
        return total / divisor_override
    h, w = x.shape[2:]
    mask = Tensor(backend.get_array_module(x.data).ones((1, 1, h, w), dtype=x.dtype))
    if count_include_pad:  # the padding counts: ones there too, zeros only beyond
        mask = F.pad(mask, (left, left, top, top), 1.0)
        mask = F.pad(mask, (0, right - left, 0, bottom - top), 0.0)
    else:
        mask = F.pad(mask, (left, right, top, bottom), 0.0)
    return total / _stack(mask, kernel, stride, dilation, out).sum(axis=2)


# ----------------------------------------------------------------------------- normalisation
def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """b_i = a_i / (k + alpha * sum_{j = i - size//2}^{i + (size-1)//2} a_j^2)^beta over the
    channels i of x (N, C, H, W), with the channels beyond the edges counting as zero.

    s is the sum of ``size`` shifted channel slices of a^2 zero-padded along C. A 3-D x
    is (N, C, L), as torch reads it.
    """
    if x.ndim == 3:
        return local_response_norm(x.reshape(*x.shape, 1), size, alpha, beta, k).reshape(
            *x.shape)
    n, c, h, w = x.shape
    _check(size >= 1, f"local_response_norm: size must be positive, got {size!r}")
    sq = F.pad(x ** 2, (0, 0, 0, 0, size // 2, (size - 1) // 2))  # channel i is at i + size//2
    s = sum(sq[:, d:d + c] for d in range(size))
    return x / (k + alpha * s) ** beta


def _array(stat):
    return stat.data if isinstance(stat, Tensor) else stat


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel (axis 1) of x (N, C, ...).

    training: mean and biased var of the batch over every axis but C; the running stats
    (if given) are then updated in place with momentum, the variance as the unbiased
    var * n / (n - 1) (n values per channel). Otherwise the running stats are used.
    """
    c, n = x.shape[1], x.numel() // x.shape[1]  # n values per channel
    axes, shape = (0,) + tuple(range(2, x.ndim)), (1, c) + (1,) * (x.ndim - 2)
    if training:
        _check(n > 1, f"batch_norm: need more than 1 value per channel, got {x.shape}")
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    else:
        mean = Tensor(_array(running_mean).astype(x.dtype).reshape(shape))
        var = Tensor(_array(running_var).astype(x.dtype).reshape(shape))
    y = (x - mean) / (var + eps) ** 0.5
    y = y if weight is None else y * weight.reshape(*shape)
    y = y if bias is None else y + bias.reshape(*shape)
    if training:  # bookkeeping on arrays, outside the graph
        for stat, batch in ((running_mean, mean.data), (running_var, var.data * n / (n - 1))):
            if stat is not None:
                _array(stat)[...] = (1 - momentum) * _array(stat) + momentum * batch.reshape(c)
    return y


# ----------------------------------------------------------------------------- loss, linear
def softmax_cross_entropy(logits, target, weight=None, ignore_index=-100, reduction='mean',
                          label_smoothing=0.0):
    """loss_n = -sum_c A_nc log p_nc over the positions n of logits (N, C, d1, ...), with
    log p = x - max - log sum_c exp(x - max) along C and, with eps = label_smoothing and
    w the class weights (1 without ``weight``):

      class indices t:       A_nc = w_c ((1 - eps) [c == t_n] + eps / C) [t_n != ignore_index]
      class probabilities q: A_nc = w_c ((1 - eps) q_nc + eps / C)

    then the per-position losses (reduction='none'), their sum, or their mean: the sum
    divided by sum_n w[t_n] over the positions not ignored (by N d1 ... for probabilities).
    """
    xp = backend.get_array_module(logits.data)
    c, positions = logits.shape[1], logits.shape[:1] + logits.shape[2:]  # (N, d1, ...)
    w = 1.0 if weight is None else xp.asarray(_array(weight)).reshape(1, c)
    t = xp.asarray(_array(target))
    q = None if t.dtype.kind != 'f' else target if isinstance(target, Tensor) else Tensor(t)
    if logits.ndim > 2:  # (N, C, d1, ...) -> (N d1 ..., C): one row per position
        perm = (0,) + tuple(range(2, logits.ndim)) + (1,)
        logits = logits.transpose(*perm).reshape(-1, c)
        q = None if q is None else q.transpose(*perm).reshape(-1, c)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - F.log(F.exp(shifted).sum(axis=1, keepdims=True))
    if q is not None:  # class probabilities (a Tensor keeps its gradient)
        a = ((1 - label_smoothing) * q + label_smoothing / c) * w
        count = logits.shape[0]
    else:
        t = xp.asarray(t).reshape(-1)
        keep = (t != ignore_index)[:, None]
        _check(bool(((0 <= t) & (t < c) | ~keep[:, 0]).all()),
               f"softmax_cross_entropy: target values must be in [0, {c}) or {ignore_index}")
        onehot = xp.eye(c, dtype=logits.dtype)[xp.where(keep[:, 0], t, 0)]
        a = Tensor(((1 - label_smoothing) * onehot + label_smoothing / c) * w * keep)
        count = Tensor(xp.asarray((w * onehot * keep).sum(), dtype=logits.dtype))
    loss = -(a * log_p).sum(axis=1)
    if reduction == 'none':
        return loss.reshape(positions)
    if reduction == 'sum':
        return loss.sum()
    _check(reduction == 'mean', f"softmax_cross_entropy: unknown reduction {reduction!r}")
    with np.errstate(invalid='ignore', divide='ignore'):
        return loss.sum() / count


def linear(x, weight, bias=None):
    """y = x W^T + b for x (..., in), W (out, in), b (out,)."""
    y = x @ weight.T
    return y if bias is None else y + bias


# ----------------------------------------------------------------------------- activations
class Erf(Function):
    """y = erf x.   dL/dx = gy * 2/sqrt(pi) e^{-x^2}."""

    def forward(self, x):
        return erf_kernel.erf(x)

    def backward(self, gy):
        (x,) = self.inputs
        return gy * (2 / math.sqrt(math.pi)) * F.exp(-x * x)


def gelu(x, approximate='none'):
    """y = x Phi(x) with Phi(x) = (1 + erf(x / sqrt2)) / 2, the standard normal CDF; or, with
    approximate='tanh', y = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""
    if approximate == 'tanh':
        return 0.5 * x * (1 + F.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    _check(approximate == 'none', f"gelu: approximate must be 'none' or 'tanh', got "
                                  f"{approximate!r}")
    return 0.5 * x * (1 + Erf()(x / math.sqrt(2)))
