"""Arithmetic, elementwise math, matmul and linear, reductions.

Each op is a ``Function`` with forward (on arrays) and backward (on Tensors) side by side.
Broadcasting: an input broadcast in the forward receives ``sum_to(gradient, input.shape)``,
the sum over the axes it was broadcast along (the adjoint of broadcasting).
"""
import numbers

import numpy as np

from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor, astype, result_type
from ..utils import (ArgumentTypeError, check_axes, check_axis, check_float, check_number,
                     compute_dtype, torch_alias)
from .shape import broadcast_shape, broadcast_to, sum_to


def _tensors(op, a, b):
    """Both operands as Tensors; a Python number takes a dtype beside the other operand by
    ``as_tensor``'s rule, and the other's device."""
    try:
        if isinstance(a, Tensor):
            return a, as_tensor(b, like=a, op=op)
        b = as_tensor(b, op=op)
        return as_tensor(a, like=b, op=op), b
    except OverflowError as e:  # e.g. uint8 tensor + (-1)
        raise ValueError(f"{op}: {e}") from None


def _operands(op, a, b):
    """Both operands as Tensors (``_tensors``), cast where NumPy would promote them
    differently from ``result_type`` (PyTorch's rule): the casts are differentiable, and
    two operands of one dtype (the usual case) are left alone."""
    a, b = _tensors(op, a, b)
    if a.dtype != b.dtype:
        dtype = result_type(a, b)
        if dtype != np.promote_types(a.dtype, b.dtype):
            a, b = astype(a, dtype), astype(b, dtype)
    return a, b


def _floating(x, op):
    """x as a floating-point Tensor: bool and integer tensors become float32, as PyTorch
    computes exp, log, sqrt, tanh, sigmoid and true division of integers in its default
    floating-point dtype. Floating-point (and complex) tensors are returned as they are."""
    x = as_tensor(x, op=op)
    return x if x.dtype.kind in 'fc' else astype(x, np.float32)


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
    """y = a ** b.   dL/da = gy * b * a^(b-1),  dL/db = gy * y * log(a),

    with PyTorch's two special cases, as constant masks (so that their own derivatives are
    0 there too, as PyTorch's): dL/da = 0 where b = 0 (also at a = 0, NaN or inf: the
    exponent b - 1 becomes 0 there, so a^0 = 1 is finite), and dL/db = 0 where a = 0 and
    b >= 0 (0^b log 0 is 0 * -inf; log(a) becomes log 1 there)."""

    def forward(self, a, b):
        broadcast_shape('pow', a.shape, b.shape)
        try:
            return a ** b
        except ValueError as e:  # an integer to a negative integer power
            raise ValueError(f"pow: {e} (got {a.dtype} ** {b.dtype})") from None

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            zero = b.data == 0  # exponent 1 there, so that a^0 = 1 even at a = 0, NaN, inf
            ga = sum_to(gy * b * a ** (b - 1 + Tensor(zero)) * Tensor(~zero), a.shape)
        if self.needs_input_grad[1]:
            zero = (a.data == 0) & (b.data >= 0)  # log 1 there instead of log 0
            gb = sum_to(gy * a ** b * log(a + Tensor(zero)) * Tensor(~zero), b.shape)
        return ga, gb


def _scaled(op, a, b, alpha):
    """(a, alpha * b) for ``add``/``sub``'s ``alpha`` (PyTorch's rule: an int alpha for
    integer operands, a bool one for bool operands). alpha * b is a Mul, so b's gradient
    is alpha * gy: dL/db = +-alpha gy."""
    a, b = _operands(op, a, b)
    if type(alpha) is int and alpha == 1:
        return a, b
    integral = a.dtype.kind in 'biu' and b.dtype.kind in 'biu'
    if isinstance(alpha, (bool, np.bool_)):
        if a.dtype.kind != 'b' or b.dtype.kind != 'b':
            raise ArgumentTypeError(f"{op}: alpha must be a number, got {alpha!r} (a bool "
                                    f"alpha is for bool tensors)")
        return a, b if alpha else b * False
    check_number(op, 'alpha', alpha)
    if integral and not isinstance(alpha, numbers.Integral):
        raise ArgumentTypeError(f"{op}: alpha must be an int for {a.dtype} and {b.dtype} "
                                f"tensors (as in PyTorch), got {alpha!r}")
    return a, b * alpha


def add(a, b, alpha=1):
    """a + alpha * b (PyTorch's ``torch.add``).   dL/da = gy,  dL/db = alpha gy."""
    a, b = _scaled('add', a, b, alpha)
    return Add()(a, b)


def sub(a, b, alpha=1):
    """a - alpha * b (PyTorch's ``torch.sub``).   dL/da = gy,  dL/db = -alpha gy."""
    a, b = _scaled('sub', a, b, alpha)
    if a.dtype.kind == b.dtype.kind == 'b':
        raise TypeError("sub: cannot subtract bool tensors (NumPy and PyTorch refuse it; "
                        "use ^ for exclusive or)")
    return Sub()(a, b)


def mul(a, b):
    return Mul()(*_operands('mul', a, b))


class RoundedDiv(Function):
    """y = trunc(a / b) (rounding_mode 'trunc') or floor(a / b) ('floor', Python's //).

    y is piecewise constant in a and b, so dL/da = dL/db = 0 wherever it is differentiable
    (everywhere but the jumps, a set of measure zero): zeros, as PyTorch's autograd gives.
    Integers stay integers (exact, no float rounding); a zero integer divisor is an error.
    """

    def __init__(self, mode):
        self.mode = mode

    def forward(self, a, b):
        broadcast_shape('div', a.shape, b.shape)
        xp = get_array_module(a)
        if a.dtype.kind in 'iu':
            if (b == 0).any():
                raise ZeroDivisionError(f"div: integer division by zero (rounding_mode="
                                        f"{self.mode!r})")
            q = a // b  # floor; trunc rounds up where the exact quotient is negative
            if self.mode == 'trunc':
                q = q + ((a % b != 0) & ((a < 0) != (b < 0)))
            return q
        return xp.floor_divide(a, b) if self.mode == 'floor' else xp.trunc(a / b)

    def backward(self, gy):
        xp = get_array_module(gy.data)
        return tuple(Tensor(xp.zeros(x.shape, x.dtype)) for x in self.inputs)


ROUNDING_MODES = (None, 'trunc', 'floor')


def div(a, b, rounding_mode=None):
    """a / b. rounding_mode None: true division, integers and bools divided in float32
    (PyTorch's rule); 'trunc' or 'floor': the quotient rounded toward zero or down, in the
    operands' dtype (integers stay integers), with a zero gradient (``RoundedDiv``)."""
    if rounding_mode not in ROUNDING_MODES:
        raise ValueError(f"div: rounding_mode must be one of {ROUNDING_MODES}, got "
                         f"{rounding_mode!r}")
    a, b = _operands('div', a, b)
    if rounding_mode is not None:
        if a.dtype.kind == b.dtype.kind == 'b':
            raise TypeError(f"div: rounding_mode={rounding_mode!r} does not take bool tensors")
        return RoundedDiv(rounding_mode)(a, b)
    if a.dtype.kind not in 'fc' and b.dtype.kind not in 'fc':
        a, b = _floating(a, 'div'), _floating(b, 'div')
    return Div()(a, b)


def neg(x):
    x = as_tensor(x, op='neg')
    if x.dtype.kind == 'b':
        raise TypeError("neg: cannot negate a bool tensor (NumPy and PyTorch refuse it; "
                        "use ~ for not)")
    return Neg()(x)


def pow(a, b):
    return Pow()(*_operands('pow', a, b))


# ----------------------------------------------------------------------------- elementwise
class Exp(Function):
    """y = e^x.   dL/dx = gy * y."""

    reads_outputs = True

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

    reads_outputs = True

    def forward(self, x):
        return get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.outputs[0]())


class Abs(Function):
    """y = |x|.   dL/dx = gy * sign(x), sign(x) = [x > 0] - [x < 0]   (0 at x = 0 and at
    a NaN x, as PyTorch)."""

    def forward(self, x):
        return abs(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * Tensor((x > 0).astype(x.dtype) - (x < 0).astype(x.dtype))


def exp(x):
    return Exp()(_floating(x, 'exp'))


def log(x):
    return Log()(_floating(x, 'log'))


def sqrt(x):
    return Sqrt()(_floating(x, 'sqrt'))


def absolute(x):
    return Abs()(as_tensor(x, op='abs'))


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
    column (b) and the added axis is removed from the result; batch axes broadcast.
    Both operands must have one floating-point dtype (docs/dtypes.md)."""
    a, b = _tensors('matmul', a, b)
    check_float('matmul', input=a, other=b)
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
    """y = x W^T + b, with W shaped (out_features, in_features) as in PyTorch. x, W and b
    must have one floating-point dtype (docs/dtypes.md)."""
    x, weight = as_tensor(x, op='linear'), as_tensor(weight, op='linear')
    bias = None if bias is None else as_tensor(bias, op='linear')
    check_float('linear', input=x, weight=weight, bias=bias)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} needs last dimension equal to "
                         f"weight.shape[1]; weight is {weight.shape} (out, in)")
    if bias is None:
        return Linear()(x, weight)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} must be ({weight.shape[0]},)")
    return Linear()(x, weight, bias)


# ----------------------------------------------------------------------------- reductions
def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _summed(x, axes, keepdims, scale=None):
    """x summed over ``axes`` (times ``scale``). float16 is summed and scaled in float32
    (``utils.compute_dtype``), then rounded once: a float16 running sum overflows above
    65504 and loses precision long before the result does (PyTorch accumulates so too)."""
    if x.dtype != np.float16:
        y = x.sum(axis=axes, keepdims=keepdims)
        return y if scale is None else y * scale
    y = x.sum(axis=axes, keepdims=keepdims, dtype=compute_dtype(x.dtype))
    return (y if scale is None else y * scale).astype(x.dtype)


class Sum(Function):
    """y = sum of x over ``axes``.   dL/dx = gy broadcast back over the summed axes.

    ``axes`` is a sorted tuple of axes (``utils.check_axes``); float16 is summed in float32.
    """

    def __init__(self, axes, keepdims=False):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return _summed(x, self.axes, self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        return broadcast_to(gy.reshape(*_keepdims_shape(x.shape, self.axes)), x.shape)


class Mean(Function):
    """y = (1/n) * sum of x over ``axes``, n = the number of elements summed.

    dL/dx = gy / n broadcast back over the summed axes. An empty reduction (n = 0) gives
    NaN, 0/0, as PyTorch's mean does; float16 is summed and divided in float32.
    """

    def __init__(self, axes, keepdims, n):
        self.axes, self.keepdims = axes, keepdims
        self.scale = 1.0 / n if n else float('nan')

    def forward(self, x):
        return _summed(x, self.axes, self.keepdims, self.scale)

    def backward(self, gy):
        x = self.inputs[0]
        gy = gy.reshape(*_keepdims_shape(x.shape, self.axes)) * self.scale
        return broadcast_to(gy, x.shape)


class Max(Function):
    """y = max of x over ``axes``.

    dL/dx_i = gy * [x_i == y] / (number of maxima): ties share the gradient equally
    (as ``torch.amax``); a unique maximum takes all of it.
    """

    def __init__(self, axes, keepdims=False):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.max(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        shape = _keepdims_shape(x.shape, self.axes)
        y = x.data.max(axis=self.axes, keepdims=True)
        mask = (x.data == y).astype(x.dtype)
        mask /= mask.sum(axis=self.axes, keepdims=True)
        return broadcast_to(gy.reshape(*shape), x.shape) * Tensor(mask)


def _reduction_options(op, axis, keepdims, dim, keepdim):
    """(axis, keepdims), each given under NumPy's name or PyTorch's (dim, keepdim)."""
    axis = torch_alias(op, 'axis', 'dim', axis, dim, None)
    keepdims = torch_alias(op, 'keepdims', 'keepdim', keepdims, keepdim, False)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise ArgumentTypeError(f"{op}: keepdims must be a bool, got {keepdims!r}")
    return axis, bool(keepdims)


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Sum over ``axis`` (None: all; an int or a tuple of ints; a 0-d tensor takes 0 or -1).
    PyTorch's names ``dim`` and ``keepdim`` are taken too (``x.sum(dim=1, keepdim=True)``)."""
    x = as_tensor(x, op='sum')
    axis, keepdims = _reduction_options('sum', axis, keepdims, dim, keepdim)
    return Sum(check_axes('sum', axis, x.shape), keepdims)(x)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Mean over ``axis``: sum / (number of elements summed); NaN over no elements, as in
    PyTorch. Floating-point tensors only (PyTorch refuses integers too). ``dim`` and
    ``keepdim``: PyTorch's names for axis and keepdims."""
    x = as_tensor(x, op='mean')
    axis, keepdims = _reduction_options('mean', axis, keepdims, dim, keepdim)
    check_float('mean', input=x)
    axes = check_axes('mean', axis, x.shape)
    n = 1
    for a in axes:
        n *= x.shape[a]
    return Mean(axes, keepdims, n)(x)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; reducing an axis of length 0 is an error (there is no max)."""
    x = as_tensor(x, op='max')
    axes = check_axes('max', axis, x.shape)
    empty = [a for a in axes if x.shape[a] == 0]
    if empty:
        raise ValueError(f"max: cannot reduce axis {empty[0]} of length 0 (tensor of shape "
                         f"{x.shape}); there is no maximum of no elements")
    return Max(axes, keepdims)(x)


def argmax(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Indices of the maxima (not differentiable): of the flattened tensor, or along ``axis``.
    ``keepdims`` keeps the reduced axis (every axis, for axis=None) with length 1.
    PyTorch's names ``dim`` and ``keepdim`` are taken too."""
    x = as_tensor(x, op='argmax')
    axis, keepdims = _reduction_options('argmax', axis, keepdims, dim, keepdim)
    if axis is not None:
        axis = check_axis('argmax', axis, x.shape) if x.ndim else None
    if x.data.size == 0 or (axis is not None and x.shape[axis] == 0):
        raise ValueError(f"argmax: there is no maximum of no elements (tensor of shape "
                         f"{x.shape}, axis {axis})")
    return Tensor(x.data.argmax(axis=axis, keepdims=bool(keepdims)))
