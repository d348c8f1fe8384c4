"""Layers: thin Modules around ``minidl.functional``, holding parameters and options.

Parameter shapes and default initialisation follow PyTorch: Conv2d weight
(out, in/groups, kh, kw), Linear weight (out, in), both uniform in +-1/sqrt(fan_in).
Parameters are float32; ``model.double()`` converts them.
"""
import numpy as np

from .. import backend, functional as F
from ..functional.loss import REDUCTIONS
from ..functional.pooling import pool_options
from ..utils import check_bool, check_int, check_number, pair
from . import init
from .module import Module, Parameter
from ..tensor import Tensor


def _empty(*shape):
    return Parameter(np.empty(shape, dtype=np.float32))


class Linear(Module):
    """y = x W^T + b with W (out_features, in_features), b (out_features,)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = check_int('Linear', 'in_features', in_features, 1)
        self.out_features = check_int('Linear', 'out_features', out_features, 1)
        self.weight = _empty(out_features, in_features)
        self.register_parameter('bias', _empty(out_features) if bias else None)
        init.default_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution over NCHW (or unbatched CHW) input; weight (out, in/groups, kh, kw),
    bias (out,). ``padding`` is an int, an (h, w) pair, 'valid' or 'same' (stride 1)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        super().__init__()
        in_channels = check_int('Conv2d', 'in_channels', in_channels, 1)
        out_channels = check_int('Conv2d', 'out_channels', out_channels, 1)
        groups = check_int('Conv2d', 'groups', groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels "
                             f"{out_channels} must both be divisible by groups {groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair('Conv2d', 'kernel_size', kernel_size, 1)
        self.stride = pair('Conv2d', 'stride', stride, 1)
        self.dilation = pair('Conv2d', 'dilation', dilation, 1)
        if isinstance(padding, str):
            if padding not in ('same', 'valid'):
                raise ValueError(f"Conv2d: padding must be 'same', 'valid', an int or a pair "
                                 f"of ints, got {padding!r}")
            if padding == 'same' and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1 (as in torch), got "
                                 f"stride {self.stride}")
            self.padding = padding
        else:
            self.padding = pair('Conv2d', 'padding', padding, 0)
        self.weight = _empty(out_channels, in_channels // groups, *self.kernel_size)
        self.register_parameter('bias', _empty(out_channels) if bias else None)
        init.default_init_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if isinstance(self.padding, str) or any(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ('' if self.bias is not None else ', bias=False')


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """x Phi(x), or its tanh form with ``approximate='tanh'`` (F.gelu)."""

    def __init__(self, approximate='none'):
        super().__init__()
        allowed = F.activation.GELU_APPROXIMATIONS
        if approximate not in allowed:
            raise ValueError(f"GELU: approximate must be one of {allowed}, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W) by default (dims start_dim..end_dim merged)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = check_int('Flatten', 'start_dim', start_dim)
        self.end_dim = check_int('Flatten', 'end_dim', end_dim)

    def forward(self, x):
        return F.flatten(x, self.start_dim, self.end_dim)


class Dropout(Module):
    """Inverted dropout with probability ``p`` in training mode, identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        check_number('Dropout', 'p', p, 0, 1)
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def _check_pool(op, kernel_size, stride, padding, dilation=1):
    """The pooling options checked as F.max_pool2d / F.avg_pool2d will (without an input)."""
    pool_options(op, kernel_size, stride, padding, dilation)


def _check_flags(op, **flags):
    for name, flag in flags.items():
        check_bool(f"{op}: {name}", flag)


class MaxPool2d(Module):
    """F.max_pool2d as a layer, with torch's parameters in torch's order; with
    ``return_indices=True`` it returns (y, indices). (N, C, H, W) or unbatched (C, H, W)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        _check_pool('MaxPool2d', kernel_size, stride, padding, dilation)
        _check_flags('MaxPool2d', return_indices=return_indices, ceil_mode=ceil_mode)
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.ceil_mode = padding, dilation, ceil_mode
        self.return_indices = return_indices

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}" \
               + (f', dilation={self.dilation}' if self.dilation != 1 else '') \
               + (', ceil_mode=True' if self.ceil_mode else '') \
               + (', return_indices=True' if self.return_indices else '')


class AvgPool2d(Module):
    """F.avg_pool2d as a layer, with torch's parameters and defaults (count_include_pad=True,
    ceil_mode=False, divisor_override=None). (N, C, H, W) or unbatched (C, H, W)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        _check_pool('AvgPool2d', kernel_size, stride, padding)
        _check_flags('AvgPool2d', ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        if divisor_override is not None and check_int('AvgPool2d', 'divisor_override',
                                                      divisor_override) == 0:
            raise ValueError("AvgPool2d: divisor_override must be a nonzero int or None, got 0")
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}" \
               + (', ceil_mode=True' if self.ceil_mode else '') \
               + ('' if self.count_include_pad else ', count_include_pad=False') \
               + ('' if self.divisor_override is None
                  else f', divisor_override={self.divisor_override}')


class LocalResponseNorm(Module):
    """b_i = a_i / (k + alpha * sum_{j near i} a_j^2)^beta across channels: the AlexNet
    paper's formula (PyTorch's layer divides alpha by size; ours does not)."""

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size = check_int('LocalResponseNorm', 'size', size, 1)
        self.alpha, self.beta, self.k = (check_number('LocalResponseNorm', name, value)
                                         for name, value in (('alpha', alpha), ('beta', beta),
                                                             ('k', k)))

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class _BatchNorm(Module):
    """Batch normalisation over all axes but the channel axis (1).

    ``affine``: learnable per-channel ``weight`` and ``bias`` (``bias=False``, keyword
    only as in PyTorch 2.13, keeps the weight alone). Training: normalise with the batch statistics and update ``running_mean`` /
    ``running_var`` (unbiased) with ``momentum``; eval: use the running statistics.
    """
    ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True):
        super().__init__()
        name = type(self).__name__
        num_features = check_int(name, 'num_features', num_features, 1)
        check_number(name, 'eps', eps, 0)
        if momentum is None:
            raise ValueError(f"{name}: momentum=None (PyTorch's cumulative average) is not "
                             f"supported; give a number in [0, 1]")
        check_number(name, 'momentum', momentum, 0, 1)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.register_parameter('weight', Parameter(np.ones(num_features, np.float32))
                                if affine else None)
        self.register_parameter('bias', Parameter(np.zeros(num_features, np.float32))
                                if affine and bias else None)
        self.register_buffer('running_mean', np.zeros(num_features, np.float32)
                             if track_running_stats else None)
        self.register_buffer('running_var', np.ones(num_features, np.float32)
                             if track_running_stats else None)

    def forward(self, x):
        if x.ndim not in self.ranks:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(map(str, self.ranks))}"
                             f"-D input, got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels "
                             f"(num_features), got input shape {x.shape}")
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm for (N, C) inputs, or (N, C, L) with statistics over N and L."""
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm for (N, C, H, W) inputs, statistics per channel over N, H, W."""
    ranks = (4,)


class Softmax(Module):
    def __init__(self, axis=-1):
        super().__init__()
        self.axis = check_int('Softmax', 'axis', axis)

    def forward(self, x):
        return F.softmax(x, self.axis)


def _class_weights(weight):
    """CrossEntropyLoss's weight as a 1-d floating-point array (from a Tensor, an array, a
    list, or another library's tensor that NumPy can read)."""
    array = weight.data if isinstance(weight, Tensor) else weight
    if not backend.is_array(array):
        try:
            array = np.asarray(array)
        except (TypeError, ValueError, RuntimeError):
            array = None
    if array is None or array.ndim != 1 or array.dtype.kind != 'f':
        raise ValueError(f"CrossEntropyLoss: weight must be None or a 1-d floating-point "
                         f"array or Tensor of per-class weights, got {weight!r}")
    return array


class CrossEntropyLoss(Module):
    """``loss = CrossEntropyLoss()(logits, target)``: F.softmax_cross_entropy as a module,
    with PyTorch's options (its non-deprecated ones, in its order). ``weight`` (C per-class
    weights) is a buffer: it moves with ``.to()`` and is saved in the state dict."""

    def __init__(self, weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0):
        super().__init__()
        if weight is not None:
            weight = _class_weights(weight)
        self.register_buffer('weight', weight)
        self.ignore_index = check_int('CrossEntropyLoss', 'ignore_index', ignore_index)
        if reduction not in REDUCTIONS:
            raise ValueError(f"CrossEntropyLoss: reduction must be one of {REDUCTIONS}, got "
                             f"{reduction!r}")
        self.reduction = reduction
        self.label_smoothing = check_number('CrossEntropyLoss', 'label_smoothing',
                                            label_smoothing, 0, 1)

    def forward(self, logits, target):
        return F.softmax_cross_entropy(logits, target, self.weight, self.ignore_index,
                                       self.reduction, self.label_smoothing)
