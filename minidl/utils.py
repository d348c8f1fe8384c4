"""Small argument helpers shared by the ops, the layers, the optimizers and the data loader
(one copy each): what a valid option or input dtype is, and the error that says otherwise.

Every check here is O(1): it looks at a Python value or at a tensor's dtype and shape,
never at the elements of an array.
"""
import numbers

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An option of the wrong type (``lr='0.1'``, ``batch_size=None``).

    A TypeError by Python's convention, and a ValueError like every other bad option in
    minidl, so that either ``except`` clause catches it (NumPy's ``AxisError`` is likewise
    both a ValueError and an IndexError).
    """


def is_number(value):
    """True for a real number (Python or NumPy int or float), False for bool, str, None."""
    if type(value) in (int, float):  # the usual case, without the slower ABC check
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value):
    """True for a Python or NumPy int, False for bool (which Python counts as an int)."""
    if type(value) is int:
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_bool(where, value):
    """``value`` as a Python bool when it is one (or a NumPy bool), else an error naming
    ``where`` (e.g. "DataLoader: shuffle"): a truthy 'no' or 1 must not mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{where} must be True or False, got {value!r}")
    return bool(value)


def check_int(op, name, value, minimum=None):
    """``value`` as a Python int, checked to be an int (not a bool) of at least ``minimum``.

    ``check_int('Linear', 'in_features', 0, 1)`` raises "Linear: in_features must be an
    int >= 1, got 0"; a float, a string or None is an ``ArgumentTypeError``.
    """
    if not _is_int(value) or (minimum is not None and value < minimum):
        expected = 'an int' if minimum is None else f'an int >= {minimum}'
        error = ValueError if _is_int(value) else ArgumentTypeError
        raise error(f"{op}: {name} must be {expected}, got {value!r}")
    return int(value)


def check_number(op, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a Python float, checked to be a real number in the interval from
    ``low`` to ``high`` (each bound inclusive unless ``low_open`` / ``high_open``; None:
    unbounded). NaN is refused. ``check_number('dropout', 'p', 1.5, 0, 1)`` raises
    "dropout: p must be a number in [0, 1], got 1.5".
    """
    number = is_number(value)
    inside = number and value == value  # (False for NaN)
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if inside:
        return float(value)
    if low is not None and high is not None:
        left, right = '(' if low_open else '[', ')' if high_open else ']'
        expected = f"a number in {left}{low}, {high}{right}"
    elif low is not None:
        expected = f"a number {'>' if low_open else '>='} {low}"
    elif high is not None:
        expected = f"a number {'<' if high_open else '<='} {high}"
    else:
        expected = 'a number'
    error = ValueError if number else ArgumentTypeError
    raise error(f"{op}: {name} must be {expected}, got {value!r}")


def pair(op, name, value, minimum=None, single=False):
    """``value`` (an int or a pair of ints) as a pair of Python ints, each at least ``minimum``.

    ``pair('conv2d', 'stride', 2) == (2, 2)``; anything else is a ValueError naming ``op``
    and ``name``, e.g. "conv2d: stride must be an int or a pair of ints, got 1.5".
    ``single``: a one-int tuple or list means that int twice (PyTorch's pooling takes
    ``padding=(1,)``; its convolutions do not).
    """
    values = (value, value) if isinstance(value, numbers.Integral) else (
        tuple(value) if isinstance(value, (tuple, list)) else ())
    if single and len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(values) < minimum:
        kind = {0: 'non-negative', 1: 'positive'}.get(minimum, f'at least {minimum}')
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return tuple(int(v) for v in values)


def check_axis(op, axis, shape, name='axis'):
    """``axis`` (an int, negative counting from the end) as an index in [0, ndim) of a
    tensor of ``shape``.

    As in PyTorch, a 0-d tensor accepts axis 0 and -1 (both give 0). Otherwise NumPy's
    ``AxisError`` (a ValueError and an IndexError) naming ``op``, the axis and the shape.
    ``name`` is the option's name in the message (``start_dim`` for flatten).
    """
    if not _is_int(axis):
        raise ArgumentTypeError(f"{op}: {name} must be an int, got {axis!r}")
    n = max(len(shape), 1)
    if not -n <= axis < n:
        raise np.exceptions.AxisError(f"{op}: {name} {axis} is out of range for a tensor of "
                                      f"shape {tuple(shape)} (expected {-n} ... {n - 1})")
    return int(axis) % n if shape else 0


def torch_alias(op, ours, theirs, value, alias, default):
    """The value of an option that minidl names as NumPy does (``ours``: axis, keepdims)
    and PyTorch otherwise (``theirs``: dim, keepdim), given under either name (not both,
    unless they agree). ``alias`` None means not given; ``default``: ours' default."""
    if alias is None:
        return value
    if value is not default and value != alias:
        raise ValueError(f"{op}: {ours}={value!r} and {theirs}={alias!r} disagree (they are "
                         f"one option; give one of them)")
    return alias


def check_axes(op, axis, shape):
    """``axis`` (None, an int or a tuple/list of ints) as a sorted tuple of distinct axes
    of a tensor of ``shape``; None means all of them. A 0-d tensor has no axes to reduce:
    axis 0 or -1 gives ``()``, as PyTorch's ``sum(dim=0)`` of a 0-d tensor returns it."""
    if axis is None:
        return tuple(range(len(shape)))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    found = [check_axis(op, a, shape) for a in axes]
    if len(set(found)) != len(found):
        raise ValueError(f"{op}: axis {axis!r} names an axis more than once (tensor of "
                         f"shape {tuple(shape)})")
    return tuple(sorted(found)) if shape else ()


def check_float(op, integers=False, **tensors):
    """The dtype check of every floating-point op (the policy of docs/dtypes.md).

    Each named tensor (``input=x, weight=w, bias=b``; None is skipped) must be float16,
    float32 or float64 (with ``integers=True`` also a signed or unsigned integer dtype:
    max pooling, ReLU), and all of them must have one dtype. Returns that dtype. Otherwise
    a TypeError naming the op, the tensor, and the expected and actual dtypes:
    "conv2d: input must be float16, float32 or float64, got int64 (shape (1, 3, 5, 5))",
    "conv2d: input is float32 but weight is float64; ...".
    """
    first = None
    for name, t in tensors.items():
        if t is None:
            continue
        dtype = t.dtype  # float16, float32 or float64: kind 'f' of at most 8 bytes
        if not (dtype.kind == 'f' and dtype.itemsize <= 8) and not (
                integers and dtype.kind in 'iu'):
            expected = ('float16, float32, float64 or an integer dtype' if integers
                        else 'float16, float32 or float64')
            raise TypeError(f"{op}: {name} must be {expected}, got {dtype} "
                            f"(shape {tuple(t.shape)})")
        if first is None:
            first = (name, dtype)
        elif dtype != first[1]:
            raise TypeError(f"{op}: {first[0]} is {first[1]} but {name} is {dtype}; they "
                            f"must have one dtype (convert one with .astype(), .float() or "
                            f".double())")
    return None if first is None else first[1]


def compute_dtype(dtype):
    """The dtype that sums and statistics over a tensor of ``dtype`` are computed in:
    float32 for float16 (whose largest number is 65504, so that x^2 overflows from |x| =
    256 on and a running sum loses precision fast), ``dtype`` itself otherwise
    (docs/dtypes.md). Results are rounded back to float16 once, at the end."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Number of window positions along one axis of a convolution or pooling (PyTorch's rule).

    A window spans ``dilation * (kernel - 1) + 1`` pixels of the input padded by ``padding``
    on each side, and starts every ``stride`` pixels:

        floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1

    With ``ceil_mode`` the division rounds up, but a last window that would start beyond
    the input and its left padding is dropped.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:  # the last window must start inside the input
        out -= 1
    return out
