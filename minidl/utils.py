"""Small argument helpers shared by the ops, the layers and the transforms (one copy each)."""
import numbers


def pair(op, name, value, minimum=None):
    """``value`` (an int or a pair of ints) as a pair of Python ints, each at least ``minimum``.

    ``pair('conv2d', 'stride', 2) == (2, 2)``; anything else is a ValueError naming ``op``
    and ``name``, e.g. "conv2d: stride must be an int or a pair of ints, got 1.5".
    """
    values = (value, value) if isinstance(value, numbers.Integral) else (
        tuple(value) if isinstance(value, (tuple, list)) else ())
    if len(values) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(values) < minimum:
        kind = {0: 'non-negative', 1: 'positive'}.get(minimum, f'at least {minimum}')
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return tuple(int(v) for v in values)


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
