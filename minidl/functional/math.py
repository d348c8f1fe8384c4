"""Arithmetic, elementwise math, matmul, reductions, shape ops and indexing.

Each op is a ``Function`` with forward (on arrays) and backward (on Tensors) side by side.
Broadcasting: an input broadcast in the forward receives ``sum_to(gradient, input.shape)``,
the sum over the axes it was broadcast along (the adjoint of broadcasting).
"""
import builtins

import numpy as np

from .. import backend
from ..tensor import Function, Tensor, as_tensor


def _operands(a, b):
    """Both operands as Tensors; a Python number takes the dtype/device of the other."""
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


def _broadcast_shape(op, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} "
                         f"cannot be broadcast together") from None


def _xp(array):
    return backend.get_array_module(array)


# ----------------------------------------------------------------------------- broadcasting
class BroadcastTo(Function):
    """y = x broadcast to ``shape``.   dL/dx = sum_to(gy, x.shape)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        _broadcast_shape('broadcast_to', x.shape, self.shape)
        return _xp(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting to x.shape would have added or stretched.
    dL/dx = broadcast_to(gy, x.shape)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True)
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


def broadcast_to(x, shape):
    x = as_tensor(x)
    return x if x.shape == tuple(shape) else BroadcastTo(shape)(x)


def sum_to(x, shape):
    return x if x.shape == tuple(shape) else SumTo(shape)(x)


# ----------------------------------------------------------------------------- arithmetic
class Add(Function):
    """y = a + b.   dL/da = gy,  dL/db = gy."""

    def forward(self, a, b):
        _broadcast_shape('add', a.shape, b.shape)
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(gy, b.shape)


class Sub(Function):
    """y = a - b.   dL/da = gy,  dL/db = -gy."""

    def forward(self, a, b):
        _broadcast_shape('sub', a.shape, b.shape)
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(-gy, b.shape)


class Mul(Function):
    """y = a * b.   dL/da = gy * b,  dL/db = gy * a."""

    def forward(self, a, b):
        _broadcast_shape('mul', a.shape, b.shape)
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """y = a / b.   dL/da = gy / b,  dL/db = -gy * a / b^2."""

    def forward(self, a, b):
        _broadcast_shape('div', a.shape, b.shape)
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
        _broadcast_shape('pow', a.shape, b.shape)
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
        return _xp(x).exp(x)

    def backward(self, gy):
        return gy * self.outputs[0]()


class Log(Function):
    """y = ln x.   dL/dx = gy / x."""

    def forward(self, x):
        return _xp(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x).   dL/dx = gy / (2 y)."""

    def forward(self, x):
        return _xp(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Abs(Function):
    """y = |x|.   dL/dx = gy * sign(x)   (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        return abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor(_xp(x).sign(x))


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs_(x):
    return Abs()(x)


class Cast(Function):
    """y = x converted to ``dtype``.   dL/dx = gy converted back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return Cast(self.inputs[0].dtype)(gy)


def astype(x, dtype):
    return x if x.dtype == np.dtype(dtype) else Cast(dtype)(x)


class ToDevice(Function):
    """y = x copied to ``device``.   dL/dx = gy copied back to x's device."""

    def __init__(self, device):
        self.device = backend.check_device(device)

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return ToDevice(self.inputs[0].device)(gy)


def to(x, device_or_dtype):
    """``x.to('cuda')``, ``x.to('cpu')`` or ``x.to(numpy.float64)`` (differentiable)."""
    if isinstance(device_or_dtype, str):
        device = backend.check_device(device_or_dtype)
        return x if x.device == device else ToDevice(device)(x)
    return astype(x, device_or_dtype)


# ----------------------------------------------------------------------------- matmul
class MatMul(Function):
    """Y = A @ B for A (..., n, k) and B (..., k, m), batch dimensions broadcast.

    dL/dA = gY @ B^T,  dL/dB = A^T @ gY   (each summed over the batch axes it was broadcast on).
    """

    def forward(self, a, b):
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        _broadcast_shape('matmul (batch dimensions)', a.shape[:-2], b.shape[:-2])
        return _xp(a).matmul(a, b)

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


# ----------------------------------------------------------------------------- shape ops
class Reshape(Function):
    """y = x with a new shape (same elements, row-major).   dL/dx = gy reshaped to x.shape."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(*self.inputs[0].shape)


def reshape(x, *shape):
    """NumPy-style: ``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return x if shape == x.shape else Reshape(shape)(x)


class Transpose(Function):
    """y = x with axes permuted.   dL/dx = gy permuted back (by the inverse permutation)."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        axes = self.axes if self.axes is not None else tuple(range(x.ndim))[::-1]
        if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
        self.axes = tuple(a % x.ndim for a in axes)
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        return gy.transpose(*inverse)


def transpose(x, *axes):
    """NumPy-style: ``x.transpose()`` reverses the axes; ``x.transpose(0, 2, 1)`` permutes."""
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Transpose(axes or None)(x)


def flatten(x, start_dim=1, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W)."""
    start, end = start_dim % x.ndim, end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for shape {x.shape}")
    shape = x.shape[:start] + (-1,) + x.shape[end + 1:]
    return x.reshape(*shape)


# ----------------------------------------------------------------------------- indexing
def _index_for(index, xp):
    """Tensors inside an index become arrays on the indexed tensor's device."""
    def one(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.ndarray)) or backend.is_array(i):
            return xp.asarray(i)
        return i
    return tuple(one(i) for i in index) if isinstance(index, tuple) else one(index)


def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in parts)


class GetItem(Function):
    """y = x[index] (basic or integer-array indexing).

    dL/dx = zeros with gy added at the indexed positions; an index repeated k times gets
    k contributions (scatter-add), as a sum over uses should.
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        try:
            return x[self.index]
        except IndexError as e:
            raise IndexError(f"getitem: index {self.index!r} is invalid for a tensor of "
                             f"shape {x.shape}: {e}") from None

    def backward(self, gy):
        return GetItemGrad(self.index, self.inputs[0].shape)(gy)


class GetItemGrad(Function):
    """gx = scatter-add of gy into zeros(x.shape) at ``index``.   Its adjoint: ggy = ggx[index]."""

    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, gy):
        gx = _xp(gy).zeros(self.shape, gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy
        else:
            backend.scatter_add(gx, self.index, gy)
        return gx

    def backward(self, ggx):
        return ggx[self.index]


def getitem(x, index):
    return GetItem(_index_for(index, _xp(x.data)))(x)


# ----------------------------------------------------------------------------- concat, pad
class Concat(Function):
    """y = the inputs joined along ``axis``.   dL/dx_k = the k-th slice of gy along axis."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        ref = xs[0]
        for x in xs[1:]:
            if x.ndim != ref.ndim or any(
                    a != b for i, (a, b) in enumerate(zip(x.shape, ref.shape))
                    if i != self.axis % ref.ndim):
                raise ValueError(f"concat: shapes {[t.shape for t in xs]} differ outside "
                                 f"axis {self.axis}")
        return _xp(ref).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        axis = self.axis % gy.ndim
        grads, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[axis]
            grads.append(gy[(slice(None),) * axis + (slice(start, stop),)])
            start = stop
        return tuple(grads)


def concat(tensors, axis=0):
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    return Concat(axis)(*tensors)


cat = concat


class Pad(Function):
    """y = x padded with a constant.   dL/dx = gy with the padding sliced away."""

    def __init__(self, widths, value):
        self.widths, self.value = widths, value

    def forward(self, x):
        return _xp(x).pad(x, self.widths, mode='constant', constant_values=self.value)

    def backward(self, gy):
        return gy[tuple(slice(lo, gy.shape[i] - hi) for i, (lo, hi) in enumerate(self.widths))]


def pad(x, pad, value=0.0):
    """Constant padding in PyTorch's convention: ``pad = (left, right)`` pads the last axis,
    ``(left, right, top, bottom)`` the last two, and so on, last axis first."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim or any(int(p) < 0 for p in pad):
        raise ValueError(f"pad: pad {tuple(pad)} must hold non-negative (before, after) pairs "
                         f"for at most {x.ndim} axes of a tensor of shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return Pad(tuple(widths), value)(x)


# ----------------------------------------------------------------------------- Tensor methods
def _compare(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, op)(other))
    return method


def install_tensor_methods():
    """Give Tensor its operators and methods (``x + y``, ``x.sum()``, ``x[i]``, ...)."""
    T = Tensor
    T.__add__ = T.__radd__ = add
    T.__sub__, T.__rsub__ = sub, lambda self, other: sub(other, self)
    T.__mul__ = T.__rmul__ = mul
    T.__truediv__, T.__rtruediv__ = div, lambda self, other: div(other, self)
    T.__pow__, T.__rpow__ = pow, lambda self, other: pow(other, self)
    T.__matmul__, T.__rmatmul__ = matmul, lambda self, other: matmul(other, self)
    T.__neg__ = neg
    T.__pos__ = lambda self: self
    T.__abs__ = abs_
    T.__getitem__ = getitem
    for op in ('__eq__', '__ne__', '__lt__', '__le__', '__gt__', '__ge__'):
        setattr(T, op, _compare(op))
    T.sum, T.mean, T.max, T.argmax = sum, mean, max, argmax
    T.reshape, T.transpose, T.flatten = reshape, transpose, flatten
    T.exp, T.log, T.sqrt, T.abs = exp, log, sqrt, abs_
    T.astype, T.to = astype, to
    T.float = lambda self: astype(self, np.float32)
    T.double = lambda self: astype(self, np.float64)
    T.cpu = lambda self: to(self, 'cpu')
    T.cuda = lambda self: to(self, 'cuda')
