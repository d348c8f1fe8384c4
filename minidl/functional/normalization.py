"""Normalisation layers: local response normalisation (AlexNet) and batch normalisation.

The derivations are written out in docs/lrn.md; each Function's docstring states its
formulas and exactly what it keeps for backward. The readable versions, from Tensor ops
alone, are ``reference.local_response_norm`` and ``reference.batch_norm``; LRN's fused
kernels are in ``minidl/kernels/lrn.py``, batch norm's for channels-last inputs in
``minidl/kernels/batchnorm.py``.
"""
import math
import numbers

from .. import backend
from ..backend import get_array_module
from ..kernels import batchnorm as BK
from ..kernels import layout
from ..kernels import lrn as K
from ..tensor import Function, Tensor, as_tensor
from ..utils import check_float, check_number, compute_dtype


# ----------------------------------------------------------------------------- LRN
class LocalResponseNorm(Function):
    """b_i = a_i / s_i^beta,   s_i = k + alpha * sum_{j in W(i)} a_j^2,
    W(i) = i - size//2 ... i + (size-1)//2 clipped to the channels [0, C).

    Backward (``LRNGrad``, derived step by step in docs/lrn.md):

        dL/da_m = gy_m s_m^-beta
                  - 2 alpha beta a_m sum_{i : m in W(i)} gy_i a_i s_i^(-beta-1)

    where m in W(i) <=> i = m - (size-1)//2 ... m + size//2: the transposed window, whose
    two half-widths are swapped relative to W (they differ for even sizes).

    Stores for backward only the scale s (one array shaped like x); the input a is the
    Tensor the engine already holds. s^-beta is recomputed in backward.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        y, self.scale = K.lrn(x, self.size, self.alpha, self.beta, self.k)
        return y

    def backward(self, gy):
        return LRNGrad(self.scale, self.size, self.alpha, self.beta)(self.inputs[0], gy)


class LRNGrad(Function):
    """gx for local response normalisation from (x, gy) and the saved scale s (see
    ``LocalResponseNorm``). Not differentiable again."""

    def __init__(self, scale, size, alpha, beta):
        self.scale, self.size, self.alpha, self.beta = scale, size, alpha, beta

    def forward(self, x, gy):
        return K.lrn_grad(x, gy, self.scale, self.size, self.alpha, self.beta)

    def backward(self, ggx):
        raise NotImplementedError("local_response_norm: double backward is not implemented")


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """Local response normalisation across the channels (axis 1) of x (N, C, H, W), or of
    x (N, C, L) or (N, C, D, H, W) ..., as torch reads them, as in the AlexNet paper (Krizhevsky et al.
    2012, section 3.3):

        b_i = a_i / (k + alpha * sum_{j = i - size//2}^{i + (size-1)//2} a_j^2)^beta

    with j clipped to [0, C) (channels beyond the edges count as zero). Floating-point x
    only; for float16 the scale s is computed in float32 (docs/dtypes.md).

    Note: PyTorch's ``nn.LocalResponseNorm`` / ``F.local_response_norm`` divides alpha by
    ``size`` (it averages the squares instead of summing them), so
    ``local_response_norm(x, size, alpha, beta, k)`` here equals PyTorch's with
    ``alpha * size``. The window is the same in both (size//2 channels before,
    (size-1)//2 after).
    """
    x = as_tensor(x, op='local_response_norm')
    check_float('local_response_norm', input=x)
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected a 3-D (N, C, L), 4-D (N, C, H, W) or "
                         f"higher input, got shape {x.shape}")
    if not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r} "
                         f"(input shape {x.shape})")
    alpha, beta, k = (check_number('local_response_norm', name, value)
                      for name, value in (('alpha', alpha), ('beta', beta), ('k', k)))
    if x.ndim != 4:  # (N, C, ...) as torch: the same across channels of an (N, C, L, 1)
        return LocalResponseNorm(int(size), alpha, beta, k)(
            x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]), 1)).reshape(*x.shape)
    return LocalResponseNorm(int(size), alpha, beta, k)(x)


# ----------------------------------------------------------------------------- batch norm
def _channel_shape(ndim, c):
    """(1, C, 1, ...): a per-channel vector broadcast against (N, C, ...)."""
    return (1, c) + (1,) * (ndim - 2)


def _per_channel(a):
    """a (N, C, ...) viewed as (N, C, L) (a copy only if a is not contiguous)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _rows(a):
    """The (N*H*W, C) view of a channels-last array (the kernels' (L, C) matrix)."""
    return layout.nhwc(a).reshape(-1, a.shape[1])


def _channel_dot(a, b):
    """sum over every axis but C of a * b, without materialising the product."""
    return get_array_module(a).einsum('ncl,ncl->c', _per_channel(a), _per_channel(b))


class BatchNorm(Function):
    """Training-mode batch normalisation with batch statistics over every axis but C.

    With n = N*H*W values per channel, mu = mean(x), var = mean((x - mu)^2) (biased),
    inv_std = 1 / sqrt(var + eps), xhat = (x - mu) * inv_std:

        y = weight * xhat + bias           (weight = 1, bias = 0 when not given)

    Backward (``BatchNormGrad``), sums over the n values of a channel, g = gy * weight:

        dL/dx      = inv_std / n * (n g - sum(g) - xhat * sum(g xhat))
        dL/dweight = sum(gy xhat)
        dL/dbias   = sum(gy)

    Stores for backward only the per-channel mu and inv_std (two length-C vectors); x is the
    input the engine already holds and xhat is recomputed from it. Also leaves the batch
    variance in ``self.var`` for the running-statistics update.

    A float16 x is normalised in float32 (``utils.compute_dtype``: its squares overflow
    float16 from |x - mu| = 256 on, which made inv_std 0), and y rounded to float16; mu,
    inv_std and var stay float32. So is the backward.

    A channels-last x (``kernels/layout.py``) goes to ``kernels/batchnorm.py``, which sums
    down the rows of its (N*H*W, C) view in cache-sized blocks: the same values, y and gx
    channels-last too.
    """

    def __init__(self, eps, has_weight, has_bias):
        self.eps, self.has_weight, self.has_bias = eps, has_weight, has_bias

    def forward(self, x, *params):
        if layout.is_channels_last(x):
            return self._forward_channels_last(x, params)
        shape = _channel_shape(x.ndim, x.shape[1])
        dtype = x.dtype
        x = x.astype(compute_dtype(dtype), copy=False)  # float16: statistics in float32
        mean = _per_channel(x).mean(axis=(0, 2))
        centred = x - mean.reshape(shape)
        var = _channel_dot(centred, centred) / (x.size // x.shape[1])
        inv_std = 1.0 / get_array_module(x).sqrt(var + self.eps)
        scale = inv_std * params[0] if self.has_weight else inv_std
        y = centred
        y *= scale.reshape(shape)
        if self.has_bias:
            y += params[-1].reshape(shape)
        self.mean, self.inv_std, self.var = mean, inv_std, var
        return y.astype(dtype, copy=False)

    def _forward_channels_last(self, x, params):
        x2, y = _rows(x), layout.empty_like(x)
        mean, var, inv_std = BK.channel_stats(x2, self.eps)
        scale = inv_std * params[0] if self.has_weight else inv_std
        BK.normalize(x2, mean, scale, params[-1] if self.has_bias else None, _rows(y))
        self.mean, self.inv_std, self.var = mean, inv_std, var
        return y

    def backward(self, gy):
        x = self.inputs[0]
        weight = self.inputs[1] if self.has_weight else None
        gx, gweight, gbias = BatchNormGrad(self.mean, self.inv_std, weight is not None)(
            x, gy, *([weight] if weight is not None else []))
        return (gx,) + ((gweight,) if self.has_weight else ()) + (
            (gbias,) if self.has_bias else ())


class BatchNormGrad(Function):
    """(dL/dx, dL/dweight, dL/dbias) of training-mode batch norm from (x, gy[, weight]) and
    the saved per-channel mean and inv_std (formulas in ``BatchNorm``). Not differentiable
    again."""

    def __init__(self, mean, inv_std, has_weight):
        self.mean, self.inv_std, self.has_weight = mean, inv_std, has_weight

    def forward(self, x, gy, *weight):
        if layout.is_channels_last(x):
            return self._forward_channels_last(x, gy, weight)
        shape = _channel_shape(x.ndim, x.shape[1])
        n = x.size // x.shape[1]
        dtype, acc = x.dtype, self.mean.dtype          # acc: float32 for a float16 x
        x, gy = x.astype(acc, copy=False), gy.astype(acc, copy=False)
        centred = x - self.mean.reshape(shape)             # xhat = centred * inv_std
        gbias = _per_channel(gy).sum(axis=(0, 2))          # sum(gy)
        gweight = _channel_dot(gy, centred) * self.inv_std  # sum(gy xhat)
        # g = gy * weight with weight constant per channel, so sum(g) = weight * gbias and
        # sum(g xhat) = weight * gweight; with f = weight * inv_std / n:
        #   dL/dx = f * (n gy - gbias - centred * inv_std * gweight)
        f = self.inv_std / n
        if self.has_weight:
            f = f * weight[0]
        gx = centred
        gx *= (-f * self.inv_std * gweight).reshape(shape)
        gx += gy * (f * n).reshape(shape)
        gx -= (f * gbias).reshape(shape)
        return (gx.astype(dtype, copy=False), gweight.astype(dtype, copy=False),
                gbias.astype(dtype, copy=False))

    def _forward_channels_last(self, x, gy, weight):
        """The same formulas on the (L, C) views, gy made channels-last first."""
        x2, gy2, gx = _rows(x), _rows(layout.to_channels_last(gy)), layout.empty_like(x)
        gbias, gdot = BK.grad_sums(x2, gy2, self.mean)
        gweight = gdot * self.inv_std
        f = self.inv_std / len(x2)
        if self.has_weight:
            f = f * weight[0]
        BK.grad_input(x2, gy2, self.mean, -f * self.inv_std * gweight, f * len(x2),
                      -(f * gbias), _rows(gx))
        return gx, gweight.astype(x.dtype, copy=False), gbias.astype(x.dtype, copy=False)

    def backward(self, ggx, ggweight, ggbias):
        raise NotImplementedError("batch_norm: double backward in training mode is not "
                                  "implemented (eval mode supports it)")


def _stat(name, stat, c, x):
    """A running statistic as an array (None stays None), checked to have shape (C,)."""
    if stat is None:
        return None
    data = stat.data if isinstance(stat, Tensor) else stat
    if not backend.is_array(data) or tuple(data.shape) != (c,):
        shape = tuple(data.shape) if hasattr(data, 'shape') else type(data).__name__
        raise ValueError(f"batch_norm: {name} must have shape ({c},) for input shape "
                         f"{x.shape} with {c} channels, got {shape}")
    if data.dtype.kind != 'f':
        raise TypeError(f"batch_norm: {name} must be a floating-point array (it is updated "
                        f"in place), got {data.dtype}")
    return data


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation of x (N, C) or (N, C, H, W) (also (N, C, L)) per channel C, as
    ``torch.nn.functional.batch_norm``:

        y = (x - mean) / sqrt(var + eps) * weight + bias

    ``training=True``: mean and (biased) var of the batch, over N (and H, W); when given,
    ``running_mean`` and ``running_var`` are updated in place (NumPy/CuPy arrays, or minidl
    Tensors whose ``.data`` is updated in place) as

        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)

    (the running variance uses the unbiased estimate, n = N*H*W). They may be None: then
    batch statistics are used and nothing is updated. A channel with a single value
    (n == 1) is an error, as in PyTorch. Differentiable once (fused ``BatchNorm``).

    ``training=False``: the running statistics (required) are used, as a composition of
    differentiable ops ``x * scale + shift`` with per-channel scale = weight /
    sqrt(running_var + eps) and shift = bias - running_mean * scale, so it differentiates
    any number of times (w.r.t. x, weight and bias; running stats are constants).

    x, weight and bias must have one floating-point dtype; the running statistics may be
    any floating-point dtype. A float16 x is normalised with float32 statistics
    (docs/dtypes.md).
    """
    x = as_tensor(x, op='batch_norm')
    weight = None if weight is None else as_tensor(weight, op='batch_norm')
    bias = None if bias is None else as_tensor(bias, op='batch_norm')
    check_float('batch_norm', input=x, weight=weight, bias=bias)
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected a 2-D (N, C), 3-D (N, C, L) or 4-D "
                         f"(N, C, H, W) input, got shape {x.shape}")
    c = x.shape[1]
    if c == 0:
        raise ValueError(f"batch_norm: the input has no channels (shape {x.shape})")
    momentum = check_number('batch_norm', 'momentum', momentum, 0, 1)
    eps = check_number('batch_norm', 'eps', eps, 0)
    rm = _stat('running_mean', running_mean, c, x)
    rv = _stat('running_var', running_var, c, x)
    for name, p in (('weight', weight), ('bias', bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for input shape "
                             f"{x.shape} with {c} channels, got {tuple(p.shape)}")
    shape = _channel_shape(x.ndim, c)

    if not training:
        if rm is None or rv is None:
            raise ValueError(f"batch_norm: running_mean and running_var are required when "
                             f"training=False (input shape {x.shape})")
        acc = compute_dtype(x.dtype)  # float16: 1/sqrt(var) in float32 (var may be > 65504)
        inv_std = 1.0 / get_array_module(rv).sqrt(rv.astype(acc) + eps)
        shift = -rm.astype(acc) * inv_std
        inv_std, shift = Tensor(inv_std.astype(x.dtype)), Tensor(shift.astype(x.dtype))
        scale = inv_std if weight is None else weight * inv_std
        if weight is not None:
            shift = shift * weight
        if bias is not None:
            shift = shift + bias
        return x * scale.reshape(*shape) + shift.reshape(*shape)

    n = x.data.size // c
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input shape {x.shape}")
    fn = BatchNorm(eps, weight is not None, bias is not None)
    y = fn(x, *[p for p in (weight, bias) if p is not None])
    mean, var = fn.mean, fn.var
    del fn.var
    if rm is not None:
        rm *= 1 - momentum
        rm += (momentum * mean).astype(rm.dtype, copy=False)
    if rv is not None:
        rv *= 1 - momentum
        rv += (momentum * n / (n - 1) * var).astype(rv.dtype, copy=False)
    return y
