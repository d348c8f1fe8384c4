"""Shape ops: broadcasting and its adjoint, reshape, transpose, flatten, indexing, concat, pad.

None of them computes anything: each moves (or repeats, or drops) elements, so each
backward moves the gradient back. The adjoint pairs: broadcast_to / sum_to, reshape back,
the inverse permutation, scatter-add / gather, slicing / padding.
"""
import builtins

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor


def broadcast_shape(op, *shapes):
    """The shape ``shapes`` broadcast to, or a ValueError naming ``op`` and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} "
                         f"cannot be broadcast together") from None


# ----------------------------------------------------------------------------- broadcasting
class BroadcastTo(Function):
    """y = x broadcast to ``shape``.   dL/dx = sum_to(gy, x.shape)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        broadcast_shape('broadcast_to', x.shape, self.shape)
        return get_array_module(x).broadcast_to(x, self.shape)

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
        gx = get_array_module(gy).zeros(self.shape, gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy
        else:
            backend.scatter_add(gx, self.index, gy)
        return gx

    def backward(self, ggx):
        return ggx[self.index]


def getitem(x, index):
    return GetItem(_index_for(index, get_array_module(x.data)))(x)


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
        return get_array_module(ref).concatenate(xs, axis=self.axis)

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
        return get_array_module(x).pad(x, self.widths, mode='constant', constant_values=self.value)

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
