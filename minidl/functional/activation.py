"""Activations: relu, tanh, sigmoid, softmax, log_softmax.

Backward passes that are cheapest in terms of the output ``y`` read it as
``self.outputs[0]()``: the output Tensor itself, so that a gradient built from it can be
differentiated again (its ``grad_fn`` is this very function).
"""
from ..backend import get_array_module
from ..kernels import elementwise as K
from ..tensor import Function
from .math import exp, sum


class ReLU(Function):
    """y = max(x, 0).   dL/dx = gy * [x > 0]   (0 at x = 0, as PyTorch): ``ReLUGrad``."""

    def forward(self, x):
        return K.relu(x)

    def backward(self, gy):
        return ReLUGrad(self.inputs[0].data)(gy)


class ReLUGrad(Function):
    """gx = gy * [x > 0] for the saved input x of a ReLU. Linear in gy with a fixed mask,
    so its own backward is the same masking: ReLUGrad(x)(ggx)."""

    def __init__(self, x):
        self.x = x

    def forward(self, gy):
        return K.relu_grad(gy, self.x)

    def backward(self, ggx):
        return ReLUGrad(self.x)(ggx)


class Tanh(Function):
    """y = tanh x.   dL/dx = gy * (1 - y^2)."""

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x).   dL/dx = gy * y * (1 - y).

    Forward as (tanh(x/2) + 1) / 2: the same function, never overflowing for large |x|.
    """

    def forward(self, x):
        return (get_array_module(x).tanh(x * 0.5) + 1) * 0.5

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
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))
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
        xp = get_array_module(x)
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
