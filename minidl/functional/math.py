"""Arithmetic, elementwise math, matmul and linear, reductions.

Each op is a ``Function`` with forward (on arrays) and backward (on Tensors) side by side.
Broadcasting: an input broadcast in the forward receives ``sum_to(gradient, input.shape)``,
the sum over the axes it was broadcast along (the adjoint of broadcasting).
"""
import builtins

from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor
from .shape import broadcast_shape, broadcast_to, sum_to


def _operands(a, b):
    """Both operands as Tensors; a Python number takes the dtype/device of the other."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


# ----------------------------------------------------------------------------- arithmetic
class Add(Function):
    """y = a + b.   dL/da = gy,  dL/db = gy."""

    def forward(self, a, b):
        broadcast_shape('add', a.shape, b.shape)
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(gy, b.shape)


class Sub(Function):
    """y = a - b.   dL/da = gy,  dL/db = -gy."""

    def forward(self, a, b):
        broadcast_shape('sub', a.shape, b.shape)
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(-gy, b.shape)


class Mul(Function):
    """y = a * b.   dL/da = gy * b,  dL/db = gy * a."""

    def forward(self, a, b):
        broadcast_shape('mul', a.shape, b.shape)
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b.   dL/da = gy / b,  dL/db = -gy * a / b^2."""

    def forward(self, a, b):
        broadcast_shape('div', a.shape, b.shape)
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    """y = -x.   dL/dx = -gy."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = a ** b.   dL/da = gy * b * a^(b-1),  dL/db = gy * y * log(a)."""

    def forward(self, a, b):
        broadcast_shape('pow', a.shape, b.shape)
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(gy * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(gy * a ** b * log(a), b.shape)
        return ga, gb


def add(a, b):
    return Add()(*_operands(a, b))


def sub(a, b):
    return Sub()(*_operands(a, b))


def mul(a, b):
    return Mul()(*_operands(a, b))


def div(a, b):
    return Div()(*_operands(a, b))


def neg(x):
    return Neg()(x)


def pow(a, b):
    return Pow()(*_operands(a, b))


# ----------------------------------------------------------------------------- elementwise
class Exp(Function):
    """y = e^x.   dL/dx = gy * y."""

    def forward(self, x):
        return get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]()


class Log(Function):
    """y = ln x.   dL/dx = gy / x."""

    def forward(self, x):
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x).   dL/dx = gy / (2 y)."""

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Abs(Function):
    """y = |x|.   dL/dx = gy * sign(x)   (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        return abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor(get_array_module(x).sign(x))


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def absolute(x):
    return Abs()(x)


# ----------------------------------------------------------------------------- matmul
class MatMul(Function):
    """Y = A @ B for A (..., n, k) and B (..., k, m), batch dimensions broadcast.

    dL/dA = gY @ B^T,  dL/dB = A^T @ gY   (each summed over the batch axes it was broadcast on).
    """

    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        broadcast_shape('matmul (batch dimensions)', a.shape[:-2], b.shape[:-2])
        return get_array_module(a).matmul(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(matmul(gy, b.transpose(*_swap_last(b.ndim))), a.shape) \
            if self.needs_input_grad[0] else None
        gb = sum_to(matmul(a.transpose(*_swap_last(a.ndim)), gy), b.shape) \
            if self.needs_input_grad[1] else None
        return ga, gb


def _swap_last(ndim):
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands are promoted to a row (a) or a
    column (b) and the added axis is removed from the result; batch axes broadcast."""
    a, b = _operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    y = MatMul()(a2, b2)
    if a.ndim == 1 or b.ndim == 1:
        shape = y.shape[:-2] + ((y.shape[-2],) if a.ndim > 1 else ()) + (
            (y.shape[-1],) if b.ndim > 1 else ())
        y = y.reshape(*shape)
    return y


class Linear(Function):
    """y = x W^T + b for x (..., in), W (out, in), b (out,).

    With X = x as a matrix (M, in) (M = all leading axes) and gY = dL/dy as (M, out):

        dL/dx = gY W   (..., in),   dL/dW = gY^T X   (out, in),   dL/db = sum_m gY[m]

    A Function of its own (not matmul(x, W.T) + b) so that dL/dW comes out as one
    C-contiguous (out, in) array, the layout the optimizer streams through, and the bias
    is added in place instead of by another node.
    """

    def forward(self, x, w, b=None):
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        g2 = gy.reshape(-1, gy.shape[-1])
        gx = matmul(gy, w) if need[0] else None
        gw = matmul(g2.T, x.reshape(-1, x.shape[-1])) if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (g2.sum(axis=0) if need[2] else None)


def linear(x, weight, bias=None):
    """y = x W^T + b, with W shaped (out_features, in_features) as in PyTorch."""
    x, weight = as_tensor(x), as_tensor(weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} needs last dimension equal to "
                         f"weight.shape[1]; weight is {weight.shape} (out, in)")
    if bias is None:
        return Linear()(x, weight)
    bias = as_tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} must be ({weight.shape[0]},)")
    return Linear()(x, weight, bias)


# ----------------------------------------------------------------------------- reductions
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = sum of x over ``axis``.   dL/dx = gy broadcast back over the summed axes."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        gy = gy.reshape(*_keepdims_shape(x.shape, _axes(self.axis, x.ndim)))
        return broadcast_to(gy, x.shape)


class Max(Function):
    """y = max of x over ``axis``.

    dL/dx_i = gy * [x_i == y] / (number of maxima): ties share the gradient equally
    (as ``torch.amax``); a unique maximum takes all of it.
    """

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
        return x.max(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        shape = _keepdims_shape(x.shape, _axes(self.axis, x.ndim))
        y = x.data.max(axis=self.axis, keepdims=True)
        mask = (x.data == y).astype(x.dtype)
        mask /= mask.sum(axis=self.axis, keepdims=True)
        return broadcast_to(gy.reshape(*shape), x.shape) * Tensor(mask)


def _check_axes(op, x, axis):
    for a in (() if axis is None else (axis,) if isinstance(axis, int) else axis):
        if not -x.ndim <= a < builtins.max(x.ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor of shape {x.shape}")


def sum(x, axis=None, keepdims=False):
    _check_axes('sum', x, axis)
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis``: sum / (number of elements summed)."""
    _check_axes('mean', x, axis)
    n = 1
    for a in _axes(axis, x.ndim):
        n *= x.shape[a]
    return Sum(axis, keepdims)(x) * (1.0 / n)


def max(x, axis=None, keepdims=False):
    _check_axes('max', x, axis)
    return Max(axis, keepdims)(x)


def argmax(x, axis=None):
    """Indices of the maxima (not differentiable)."""
    return Tensor(x.data.argmax(axis=axis))
