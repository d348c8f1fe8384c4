"""Activations: relu, tanh, sigmoid, softmax, log_softmax.

Backward passes that are cheapest in terms of the output ``y`` read it as
``self.outputs[0]()``: the output Tensor itself, so that a gradient built from it can be
differentiated again (its ``grad_fn`` is this very function).
"""
from ..backend import get_array_module
from ..kernels import elementwise as K
from ..tensor import Function, as_tensor
from ..utils import check_axis, check_float
from .math import _floating, exp, sum


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
    """y_i = e^{x_i} / sum_j e^{x_j} along ``axis`` (None for a 0-d x: y = 1).

    dL/dx = y * (gy - sum(gy * y, axis))   (the Jacobian diag(y) - y y^T applied to gy).
    An empty x gives an empty y (there is no maximum to shift by).
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:
            return x.copy()
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.outputs[0]()
        return y * (gy - sum(gy * y, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^{x_j} along ``axis`` (shifted by max x for stability; None
    for a 0-d x: y = 0).

    dL/dx = gy - softmax(x) * sum(gy, axis),   with softmax(x) = e^y.
    An empty x gives an empty y.
    """

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:
            return x.copy()
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)


def relu(x):
    """max(x, 0), for floating-point and integer tensors (not bool, as in PyTorch)."""
    x = as_tensor(x, op='relu')
    check_float('relu', integers=True, input=x)
    return ReLU()(x)


def tanh(x):
    """tanh x; an integer or bool x is computed in float32, as PyTorch does."""
    return Tanh()(_floating(x, 'tanh'))


def sigmoid(x):
    """1 / (1 + e^-x); an integer or bool x is computed in float32, as PyTorch does."""
    return Sigmoid()(_floating(x, 'sigmoid'))


def _softmax_axis(op, x, axis):
    """x checked (floating-point) and ``axis`` as the axis the Function reduces: an index
    in [0, ndim), or None for a 0-d x (PyTorch takes axis 0 or -1 there)."""
    check_float(op, input=x)
    axis = check_axis(op, axis, x.shape)
    return axis if x.ndim else None


def softmax(x, axis=-1):
    """e^x / sum e^x along ``axis``, for a floating-point x (an empty x gives an empty y)."""
    x = as_tensor(x, op='softmax')
    return Softmax(_softmax_axis('softmax', x, axis))(x)


def log_softmax(x, axis=-1):
    """x - log sum e^x along ``axis``, for a floating-point x (an empty x gives an empty y)."""
    x = as_tensor(x, op='log_softmax')
    return LogSoftmax(_softmax_axis('log_softmax', x, axis))(x)
