"""Activations: relu, tanh, sigmoid, softmax, log_softmax.

Backward passes that are cheapest in terms of the output ``y`` read it as
``self.outputs[0]()``: the output Tensor itself, so that a gradient built from it can be
differentiated again (its ``grad_fn`` is this very function).
"""
from .. import backend
from ..tensor import Function, Tensor
from .math import exp, sum


def _xp(array):
    return backend.get_array_module(array)


class ReLU(Function):
    """y = max(x, 0).   dL/dx = gy * [x > 0]   (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        return _xp(x).maximum(x, 0)  # a Python 0 does not change the dtype

    def backward(self, gy):
        return gy * Tensor(self.inputs[0].data > 0)  # float * bool keeps the float dtype


class Tanh(Function):
    """y = tanh x.   dL/dx = gy * (1 - y^2)."""

    def forward(self, x):
        return _xp(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x).   dL/dx = gy * y * (1 - y).

    Forward as (tanh(x/2) + 1) / 2: the same function, never overflowing for large |x|.
    """

    def forward(self, x):
        return (_xp(x).tanh(x * 0.5) + 1) * 0.5

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * y * (1 - y)


class Softmax(Function):
    """y_i = e^{x_i} / sum_j e^{x_j} along ``axis``.

    dL/dx = y * (gy - sum(gy * y, axis))   (the Jacobian diag(y) - y y^T applied to gy).
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        e = _xp(x).exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.outputs[0]()
        return y * (gy - sum(gy * y, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^{x_j} along ``axis`` (shifted by max x for stability).

    dL/dx = gy - softmax(x) * sum(gy, axis),   with softmax(x) = e^y.
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = _xp(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)


def relu(x):
    return ReLU()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def _check_axis(op, x, axis):
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of shape {x.shape}")


def softmax(x, axis=-1):
    _check_axis('softmax', x, axis)
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    _check_axis('log_softmax', x, axis)
    return LogSoftmax(axis)(x)
