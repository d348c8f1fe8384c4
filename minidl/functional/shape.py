"""Shape ops: broadcasting and its adjoint, reshape, transpose, flatten, indexing, concat, pad.

None of them computes anything: each moves (or repeats, or drops) elements, so each
backward moves the gradient back. The adjoint pairs: broadcast_to / sum_to, reshape back,
the inverse permutation, scatter-add / gather, slicing / padding.
"""
import numbers

import numpy as np

from .. import backend
from ..backend import get_array_module
from ..tensor import Function, Tensor, as_tensor, astype, result_type
from ..kernels import layout as L
from ..kernels.elementwise import ascontiguousarray
from ..utils import ArgumentTypeError, check_axis, torch_alias


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
    x = as_tensor(x, op='broadcast_to')
    shape = _shape('broadcast_to', shape if isinstance(shape, (tuple, list)) else (shape,))
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


def _shape(op, shape, what='a shape'):
    """``shape`` (a tuple of ints) checked, or an error naming ``op`` and the shape."""
    if all(type(n) is int for n in shape):  # the usual case, without the slower ABC check
        return tuple(shape)
    if not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in shape):
        raise ArgumentTypeError(f"{op}: {what} is a sequence of ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def reshape(x, *shape):
    """NumPy-style: ``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    shape = _shape('reshape', shape)
    return x if shape == x.shape else Reshape(shape)(x)


class Transpose(Function):
    """y = x with axes permuted.   dL/dx = gy permuted back (by the inverse permutation)."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        return gy.transpose(*inverse)


def transpose(x, *axes):
    """NumPy-style: ``x.transpose()`` reverses the axes; ``x.transpose(0, 2, 1)`` permutes."""
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    if not axes:
        return Transpose(tuple(range(x.ndim))[::-1])(x)
    perm = tuple(check_axis('transpose', a, x.shape) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                         f"{x.ndim} axes of a tensor of shape {x.shape}")
    return Transpose(perm)(x)


class Contiguous(Function):
    """y = x, its numbers laid out in memory as ``memory_format`` says (NCHW
    'contiguous_format' or NHWC 'channels_last': ``minidl/kernels/layout.py``). The values
    do not change, so dL/dx = gy."""

    def __init__(self, memory_format):
        self.memory_format = memory_format

    def forward(self, x):
        if self.memory_format == L.CHANNELS_LAST:
            return L.to_channels_last(x)
        return ascontiguousarray(x)

    def backward(self, gy):
        return gy


def contiguous(x, memory_format='contiguous_format'):
    """x with its memory in ``memory_format``, as torch's ``Tensor.contiguous``:
    'contiguous_format' (C order, NCHW for images) or 'channels_last' (4-D only: NHWC memory
    behind the (N, C, H, W) shape). The tensor itself when it is already so laid out.
    Convolution, pooling, BatchNorm and the activations keep a channels-last input's
    layout, and minidl's convolutions are faster on it on the CPU (docs/fast-cifar.md)."""
    x = as_tensor(x, op='contiguous')
    if memory_format not in L.FORMATS:
        raise ValueError(f"contiguous: memory_format must be one of {L.FORMATS}, got "
                         f"{memory_format!r}")
    if memory_format == L.CHANNELS_LAST and x.ndim != 4:
        raise ValueError(f"contiguous: memory_format='channels_last' needs a 4-D (N, C, H, W) "
                         f"tensor, got shape {x.shape}")
    if is_contiguous(x, memory_format):
        return x
    return Contiguous(memory_format)(x)


def is_contiguous(x, memory_format='contiguous_format'):
    """Whether x's memory is laid out as ``memory_format`` (see ``contiguous``)."""
    data = as_tensor(x, op='is_contiguous').data
    if memory_format == L.CHANNELS_LAST:
        return L.has_nhwc_memory(data)
    return bool(data.flags.c_contiguous)


def flatten(x, start_dim=1, end_dim=-1):
    """Merge dimensions start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W).

    Both must be dimensions of x (negative ones count from the end), start_dim not after
    end_dim. A 0-d tensor, which has no dimension to keep or merge, becomes shape (1,),
    as ``torch.flatten`` gives it. Empty dimensions are fine: (0, 3, 4) -> (0, 12).
    """
    x = as_tensor(x, op='flatten')
    if x.ndim == 0:  # dims 0 and -1 are valid for it, and so is the default start_dim=1
        if start_dim != 1:
            check_axis('flatten', start_dim, (), 'start_dim')
        check_axis('flatten', end_dim, (), 'end_dim')
        return x.reshape(1)
    start = check_axis('flatten', start_dim, x.shape, 'start_dim')
    end = check_axis('flatten', end_dim, x.shape, 'end_dim')
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                         f"for shape {x.shape}")
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return x.reshape(*(x.shape[:start] + (merged,) + x.shape[end + 1:]))


# ----------------------------------------------------------------------------- indexing
def _index_for(index, xp):
    """Tensors inside an index become arrays on the indexed tensor's device."""
    def one(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, list) and not i:  # x[[]]: no rows (NumPy would read [] as floats)
            return xp.asarray(i, dtype=np.intp)
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
        return get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[self.axis]
            grads.append(gy[(slice(None),) * self.axis + (slice(start, stop),)])
            start = stop
        return tuple(grads)


def concat(tensors, axis=0, *, dim=None):
    """Join tensors along an existing axis (``torch.cat``; its name ``dim`` too). Their
    dtypes are promoted to one by the rule of elementwise arithmetic (``tensor.result_type``)."""
    axis = torch_alias('concat', 'axis', 'dim', axis, dim, 0)
    if not isinstance(tensors, (list, tuple)):
        raise ArgumentTypeError(f"concat: expected a list or tuple of tensors, got "
                                f"{type(tensors).__name__}")
    tensors = [as_tensor(t, op='concat') for t in tensors]
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    ref = tensors[0]
    if ref.ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along")
    axis = check_axis('concat', axis, ref.shape)
    if any(t.ndim != ref.ndim or t.shape[:axis] + t.shape[axis + 1:] !=
           ref.shape[:axis] + ref.shape[axis + 1:] for t in tensors[1:]):
        raise ValueError(f"concat: shapes {[t.shape for t in tensors]} differ outside "
                         f"axis {axis}")
    dtype = result_type(*tensors)
    return Concat(axis)(*[astype(t, dtype) for t in tensors])


cat = concat


PAD_MODES = ('constant', 'reflect', 'replicate', 'circular')


def pad_source(n, lo, hi, mode):
    """The source index in [0, n) of each of the lo + n + hi positions of an axis of length
    n padded by ``mode`` (not 'constant'): position j - lo reads x[src[j]], where for
    i = j - lo in [-lo, n + hi)

        reflect:   -i for i < 0, 2 (n - 1) - i for i >= n  (the edge is not repeated)
        replicate: clip(i, 0, n - 1)
        circular:  i mod n
    Negative widths crop. Circular crops first and wraps around what is left (PyTorch's
    rule): with c = max(-lo, 0) cropped before and m elements left, position j reads
    x[c + (j - max(lo, 0)) mod m].
    """
    if mode == 'circular':
        crop, m = max(-lo, 0), n - max(-lo, 0) - max(-hi, 0)
        return crop + np.arange(-max(lo, 0), m + max(hi, 0)) % m
    i = np.arange(-lo, n + hi)
    if mode == 'reflect':
        return np.where(i < 0, -i, np.where(i >= n, 2 * (n - 1) - i, i))
    return np.clip(i, 0, n - 1)


class Pad(Function):
    """y = x padded along each axis by ``widths`` ((before, after) per axis).

    constant: y = x with ``value`` around it (and, for negative widths, x cropped).
        dL/dx = gy cropped back: itself a constant pad of gy by the negated widths.
    reflect, replicate, circular: along each padded axis, y[..., j, ...] = x[..., src[j], ...]
        with src of ``pad_source``, a gather; so dL/dx is its adjoint, the scatter-add of gy
        onto the source positions, dL/dx[..., s, ...] = sum_{j: src[j] = s} gy[..., j, ...]
        (``PadGrad``), axis by axis in reverse order.
    """

    def __init__(self, widths, value=0.0, mode='constant'):
        self.widths, self.value, self.mode = widths, value, mode

    def forward(self, x):
        xp = get_array_module(x)
        if self.mode == 'constant':
            crop = tuple(slice(-min(lo, 0), x.shape[k] + min(hi, 0))
                         for k, (lo, hi) in enumerate(self.widths))
            return xp.pad(x[crop], [(max(lo, 0), max(hi, 0)) for lo, hi in self.widths],
                          mode='constant', constant_values=self.value)
        for axis, (lo, hi) in enumerate(self.widths):
            if lo or hi:
                src = xp.asarray(pad_source(x.shape[axis], lo, hi, self.mode))
                x = xp.take(x, src, axis=axis)
        return x

    def backward(self, gy):
        if self.mode == 'constant':
            return Pad(tuple((-lo, -hi) for lo, hi in self.widths))(gy)
        return PadGrad(self.widths, self.mode, self.inputs[0].shape)(gy)


class PadGrad(Function):
    """gx = scatter-add of gy onto the source positions of a reflect/replicate/circular pad
    (``Pad``'s backward).   Its adjoint is that pad itself: ggy = Pad(ggx)."""

    def __init__(self, widths, mode, shape):
        self.widths, self.mode, self.shape = widths, mode, shape

    def forward(self, gy):
        xp = get_array_module(gy)
        for axis in reversed(range(len(self.widths))):
            lo, hi = self.widths[axis]
            if lo or hi:
                n = self.shape[axis]
                gx = xp.zeros(gy.shape[:axis] + (n,) + gy.shape[axis + 1:], gy.dtype)
                src = xp.asarray(pad_source(n, lo, hi, self.mode))
                backend.scatter_add(gx, (slice(None),) * axis + (src,), gy)
                gy = gx
        return gy

    def backward(self, ggx):
        return Pad(self.widths, mode=self.mode)(ggx)


def pad(x, pad, mode='constant', value=0.0):
    """PyTorch's ``F.pad``: ``pad = (left, right)`` pads the last axis, ``(left, right, top,
    bottom)`` the last two, and so on, last axis first.

    mode 'constant' fills with ``value`` and pads any number of axes; a negative width
    crops instead (as in PyTorch). 'reflect' (mirror without repeating the edge: widths
    below the axis' length), 'replicate' (repeat the edge) and 'circular' (wrap around:
    widths up to the length left after cropping) pad the last 1, 2 or 3 axes of a tensor
    with 1 or 2 more axes (e.g. (N, C, H, W) or (C, H, W) for 4 widths), as in PyTorch,
    negative widths cropping there too (``pad_source`` says which element goes where). ``value`` is for mode 'constant' only. (minidl also takes ``value`` as the
    third positional argument, its former place, when it is a number.)
    """
    if isinstance(mode, numbers.Number) and not isinstance(mode, bool):
        mode, value = 'constant', mode  # pad(x, widths, 0.5): the former signature
    x = as_tensor(x, op='pad')
    pad = _shape('pad', pad, 'pad') if isinstance(pad, (tuple, list)) else pad
    if not isinstance(pad, tuple):
        raise ArgumentTypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    if not isinstance(value, numbers.Number) or isinstance(value, bool):
        raise ArgumentTypeError(f"pad: value must be a number, got {value!r}")
    k = len(pad) // 2
    if len(pad) % 2 or k > x.ndim:
        raise ValueError(f"pad: pad {tuple(pad)} must hold (before, after) pairs for at most "
                         f"{x.ndim} axes of a tensor of shape {x.shape}")
    widths = [(0, 0)] * x.ndim
    for a in range(k):
        widths[x.ndim - 1 - a] = (pad[2 * a], pad[2 * a + 1])
    if mode == 'constant':
        for axis, (lo, hi) in enumerate(widths):
            if x.shape[axis] + lo + hi < 0:
                raise ValueError(f"pad: widths {(lo, hi)} crop axis {axis} of a tensor of "
                                 f"shape {x.shape} to a negative length")
        return Pad(tuple(widths), value)(x)
    if value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no value (only 'constant'), got "
                         f"value={value!r}")
    if not (1 <= k <= 3 and x.ndim in (k + 1, k + 2)):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 axes of a tensor with "
                         f"1 or 2 more axes; pad {tuple(pad)} ({k} axes) needs a "
                         f"{k + 1}-d or {k + 2}-d tensor, got shape {x.shape}")
    for axis, (lo, hi) in enumerate(widths[x.ndim - k:], x.ndim - k):
        n = x.shape[axis]
        left = n - max(-lo, 0) - max(-hi, 0)  # what circular wraps around, after cropping
        limit = {'reflect': n - 1, 'circular': left, 'replicate': None}[mode]
        if (limit is not None and max(lo, hi) > limit) or n == 0 or n + lo + hi < 1:
            rule = {'reflect': f'below its length {n}',
                    'circular': f'at most its length after cropping, {left}',
                    'replicate': 'any'}[mode]
            raise ValueError(f"pad: mode {mode!r} needs widths {rule} (negative ones crop, "
                             f"leaving at least one element, and no empty axis) for axis "
                             f"{axis} of a tensor of shape {x.shape}, got {(lo, hi)}")
    return Pad(tuple(widths), mode=mode)(x)
