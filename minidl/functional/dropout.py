"""Inverted dropout."""
from .. import random
from ..backend import device_of
from ..tensor import Function, Tensor, as_tensor
from ..utils import check_float, check_number


class Dropout(Function):
    """y = x * m / (1 - p),  m_i ~ Bernoulli(1 - p) drawn fresh each call.

    Scaling the kept units by 1/(1-p) at training time keeps E[y] = x, so evaluation is the
    identity. dL/dx = gy * m / (1 - p). Stores the boolean mask m (1 byte per element).
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.mask = random.rand(x.shape, x.dtype, device=device_of(x)) >= self.p
        return x * self._scaled_mask(x.dtype)

    def backward(self, gy):
        return gy * Tensor(self._scaled_mask(gy.dtype))

    def _scaled_mask(self, dtype):
        return self.mask.astype(dtype) * dtype.type(1.0 / (1.0 - self.p))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) when
    ``training``; the identity otherwise. Reproducible under ``minidl.manual_seed``.
    Floating-point x only (docs/dtypes.md), in training and in evaluation alike."""
    x = as_tensor(x, op='dropout')
    check_float('dropout', input=x)
    p = check_number('dropout', 'p', p, 0, 1)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout(p)(x)
