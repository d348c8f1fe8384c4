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

Each takes a Tensor (a Parameter, usually); the random ones a floating-point one.
"""
import math
import warnings

import numpy as np

from .. import random
from ..tensor import Tensor
from ..utils import ArgumentTypeError, check_int, check_number, is_number


def _fill(tensor, array):
    """Write ``array`` (on the tensor's device) into the tensor, cast to its dtype."""
    tensor.data[...] = array
    return tensor


def _check_tensor(op, tensor, floating=False):
    """A Tensor to fill in place (a random fill: a floating-point one, as in PyTorch)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a Tensor (e.g. a Parameter), got "
                        f"{type(tensor).__name__}")
    if floating and tensor.dtype.kind != 'f':
        raise TypeError(f"{op}: expected a floating-point tensor, got {tensor.dtype} with "
                        f"shape {tensor.shape}")


def _fans(tensor, op='init'):
    if tensor.ndim < 2:
        raise ValueError(f"{op}: fan in/out need at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    fan_in, fan_out = tensor.shape[1] * receptive, tensor.shape[0] * receptive
    if fan_in == 0 or fan_out == 0:
        raise ValueError(f"{op}: fan_in {fan_in} and fan_out {fan_out} must be positive, got "
                         f"a tensor of shape {tensor.shape} (zero-size)")
    return fan_in, fan_out


LINEAR = ('linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d', 'conv_transpose2d',
          'conv_transpose3d', 'sigmoid', 'identity')


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (as ``torch.nn.init.calculate_gain``)."""
    if nonlinearity in LINEAR:
        return 1.0
    if nonlinearity == 'tanh':
        return 5.0 / 3
    if nonlinearity == 'relu':
        return math.sqrt(2.0)
    if nonlinearity == 'leaky_relu':
        slope = 0.01 if param is None else check_number('calculate_gain', 'param '
                                                        '(negative_slope)', param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == 'selu':
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; known: "
                     f"{', '.join(LINEAR + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with samples from U[a, b) (a <= b, both finite, as PyTorch requires)."""
    _check_tensor('uniform_', tensor, floating=True)
    a, b = check_number('uniform_', 'a', a), check_number('uniform_', 'b', b)
    if not (math.isfinite(a) and math.isfinite(b)) or a > b:
        raise ValueError(f"uniform_: expected finite bounds a <= b, got a={a}, b={b}")
    u = random.rand(tensor.shape, np.float64, tensor.device)
    return _fill(tensor, a + (b - a) * u)


def normal_(tensor, mean=0.0, std=1.0):
    _check_tensor('normal_', tensor, floating=True)
    mean, std = check_number('normal_', 'mean', mean), check_number('normal_', 'std', std, 0)
    return _fill(tensor, mean + std * random.randn(tensor.shape, np.float64, tensor.device))


def constant_(tensor, value):
    """Fill with ``value``, a number the tensor's dtype holds (as PyTorch: NaN and inf
    only in a float tensor, 1e40 not in float32, 300 not in uint8)."""
    _check_tensor('constant_', tensor)
    if not (is_number(value) or isinstance(value, (bool, np.bool_))):
        raise ArgumentTypeError(f"constant_: value must be a number, got {value!r:.40}")
    try:
        with np.errstate(over='raise'):
            fill = np.array(value, dtype=tensor.dtype)
    except (ValueError, OverflowError, FloatingPointError) as e:
        raise ValueError(f"constant_: {value!r} does not fit a {tensor.dtype} tensor "
                         f"({e})") from None
    tensor.data[...] = fill[()]  # a NumPy scalar: CuPy arrays take it too
    return tensor


def zeros_(tensor):
    _check_tensor('zeros_', tensor)
    return constant_(tensor, 0)


def ones_(tensor):
    _check_tensor('ones_', tensor)
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
    _check_tensor('dirac_', tensor)
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


def _nothing_to_fill(op, tensor):
    """True for a tensor of no elements, which the fan-based inits leave alone, as PyTorch
    (whose kaiming inits warn; the fans of a (3, 0) weight would divide by 0)."""
    _check_tensor(op, tensor, floating=True)
    if tensor.data.size:
        return False
    if op.startswith('kaiming'):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
    return True


def kaiming_uniform_(tensor, a=0.0, mode='fan_in', nonlinearity='leaky_relu'):
    if _nothing_to_fill('kaiming_uniform_', tensor):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode='fan_in', nonlinearity='leaky_relu'):
    if _nothing_to_fill('kaiming_normal_', tensor):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def _xavier_std(op, tensor, gain):
    gain = check_number(op, 'gain', gain, 0, math.inf, high_open=True)  # (PyTorch: < 0 fails)
    fan_in, fan_out = _fans(tensor, op)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(tensor, gain=1.0):
    if _nothing_to_fill('xavier_uniform_', tensor):
        return tensor
    bound = math.sqrt(3.0) * _xavier_std('xavier_uniform_', tensor, gain)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    if _nothing_to_fill('xavier_normal_', tensor):
        return tensor
    return normal_(tensor, 0.0, _xavier_std('xavier_normal_', tensor, gain))


def default_init_(weight, bias=None):
    """PyTorch's default for Linear and Conv2d: kaiming_uniform_(a=sqrt(5)), i.e. weights
    and biases uniform in +-1/sqrt(fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = 1 / math.sqrt(_fans(weight)[0])
        uniform_(bias, -bound, bound)
