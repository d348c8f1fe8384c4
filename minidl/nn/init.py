"""Weight initialisation, in place, with PyTorch's names and formulas.

For a weight of shape (out, in, *kernel): fan_in = in * prod(kernel), fan_out = out *
prod(kernel). Random numbers come from minidl's generator (``minidl.manual_seed``).

- ``kaiming_uniform_`` / ``kaiming_normal_`` (He et al. 2015): std = gain / sqrt(fan), with
  gain = sqrt(2 / (1 + a^2)) for (leaky) ReLU; uniform bound = sqrt(3) * std.
- ``xavier_uniform_`` / ``xavier_normal_`` (Glorot & Bengio 2010):
  std = gain * sqrt(2 / (fan_in + fan_out)).
- The AlexNet paper: ``normal_(w, 0, 0.01)`` for weights, ``constant_(b, 1)`` or ``zeros_``.
- ``dirac_``: the identity convolution (a 1 at the kernel centre linking output channel d
  to input channel d), deterministic.
"""
import math

import numpy as np

from .. import random
from ..utils import check_int, check_number


def _fill(tensor, array):
    """Write ``array`` (on the tensor's device) into the tensor, cast to its dtype."""
    tensor.data[...] = array
    return tensor


def _fans(tensor, op='init'):
    if tensor.ndim < 2:
        raise ValueError(f"{op}: fan in/out need at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    fan_in, fan_out = tensor.shape[1] * receptive, tensor.shape[0] * receptive
    if fan_in == 0 or fan_out == 0:
        raise ValueError(f"{op}: fan_in {fan_in} and fan_out {fan_out} must be positive, got "
                         f"a tensor of shape {tensor.shape} (zero-size)")
    return fan_in, fan_out


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    if nonlinearity in ('linear', 'conv2d', 'sigmoid', 'identity'):
        return 1.0
    if nonlinearity == 'tanh':
        return 5.0 / 3
    if nonlinearity == 'relu':
        return math.sqrt(2.0)
    if nonlinearity == 'leaky_relu':
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def uniform_(tensor, a=0.0, b=1.0):
    a, b = check_number('uniform_', 'a', a), check_number('uniform_', 'b', b)
    u = random.rand(tensor.shape, np.float64, tensor.device)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor, mean=0.0, std=1.0):
    mean, std = check_number('normal_', 'mean', mean), check_number('normal_', 'std', std, 0)
    return _fill(tensor, mean + std * random.randn(tensor.shape, np.float64, tensor.device))


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def dirac_(tensor, groups=1):
    """The Dirac delta, as ``torch.nn.init.dirac_``: a convolution weight (out, n, *kernel)
    of 1-, 2- or 3-d kernels (a 3-, 4- or 5-d tensor; n input channels per group) that
    passes input channels through.

    Split the out channels into ``groups`` blocks of m = out / groups. Within block g,
    output channel g*m + d gets a single 1 at (its group's) input channel d and the kernel
    centre (k // 2 for each kernel size k), for d < min(m, n); every other entry is 0.
    A grouped convolution feeds block g with input channels g*n ... g*n + n - 1, so for an
    odd kernel with 'same' padding (k // 2 on each side) and stride 1, in 1-d,

        y[g*m + d, i] = sum_{c, j} w[g*m + d, c, j] x[g*n + c, i - k//2 + j] = x[g*n + d, i]

    for d < min(m, n): with groups=1 the first min(out, n) outputs copy the first inputs.
    The other outputs of a block (d >= n) are 0.
    """
    groups = check_int('dirac_', 'groups', groups, 1)
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: expected a 3-, 4- or 5-d tensor (out, in, *kernel), got "
                         f"shape {tensor.shape}")
    out_channels, in_channels = tensor.shape[:2]
    if out_channels % groups:
        raise ValueError(f"dirac_: dim 0 (out channels) must be divisible by groups "
                         f"{groups}, got shape {tensor.shape}")
    per_group = out_channels // groups
    centre = tuple(k // 2 for k in tensor.shape[2:])
    tensor.data[...] = 0
    for g in range(groups):
        for d in range(min(per_group, in_channels)):
            tensor.data[(g * per_group + d, d) + centre] = 1
    return tensor


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ('fan_in', 'fan_out'):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor, 'kaiming init')
    fan = {'fan_in': fan_in, 'fan_out': fan_out}[mode]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode='fan_in', nonlinearity='leaky_relu'):
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode='fan_in', nonlinearity='leaky_relu'):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor, 'xavier_uniform_')
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = _fans(tensor, 'xavier_normal_')
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def default_init_(weight, bias=None):
    """PyTorch's default for Linear and Conv2d: kaiming_uniform_(a=sqrt(5)), i.e. weights
    and biases uniform in +-1/sqrt(fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(_fans(weight)[0])
        uniform_(bias, -bound, bound)
