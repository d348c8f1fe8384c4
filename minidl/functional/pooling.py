"""2-D pooling over NCHW images: max_pool2d and avg_pool2d (as torch.nn.functional).

y[n, c, p, q] is the max (or the mean) of the KH x KW window of x at (p*sh - ph, q*sw - pw)
(max pooling: its taps dh rows and dw columns apart, ``dilation``). The readable versions
are ``reference.max_pool2d`` and ``reference.avg_pool2d``: stack the KH*KW offsets of every
window and reduce them, autograd deriving the backward. The fast ones here keep far less
for backward (max pooling: one small integer per output, the position of the maximum) and
call the kernels of ``minidl/kernels/pooling.py``.

Every backward is itself a ``Function`` whose backward is known in closed form (pooling
gradients are linear in the upstream gradient), so both ops differentiate twice and more.
Overlapping windows (e.g. 3x3 stride 2) need no special case: in backward every window adds
its share into the gradient, so a pixel read by several windows accumulates all of them.

Both ops accept an unbatched x (C, H, W), as torch does: pooled as a batch of one and
returned without the batch axis (``_unbatched``).
"""
from collections import namedtuple

from ..kernels import pooling as K
from ..kernels.im2col import pad2d
from ..tensor import Function, Tensor, as_tensor, is_grad_enabled
from ..utils import check_bool, check_float, check_int, output_size, pair

# kernel, stride, dilation: (h, w) pairs; pads: (top, bottom, left, right); padded: the
# padded input's (N, C, H', W'); out: (OH, OW); padding: the (ph, pw) asked for
Pool = namedtuple('Pool', 'kernel stride dilation pads padded out padding')


def pool_options(op, kernel_size, stride, padding, dilation):
    """The options as (h, w) pairs, as PyTorch reads them: an int, a pair or a one-int
    tuple; ``stride`` None or ``()`` means the kernel size."""
    kernel = pair(op, 'kernel_size', kernel_size, 1, single=True)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    stride = kernel if no_stride else pair(op, 'stride', stride, 1, single=True)
    return (kernel, stride, pair(op, 'padding', padding, 0, single=True),
            pair(op, 'dilation', dilation, 1, single=True))


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Check the options against x's (4-D) shape; return the Pool geometry.

    ``pads = (top, bottom, left, right)``: top/left are ``padding``; bottom/right are what
    the last window needs (more than ``padding`` in ceil mode, possibly less in floor mode,
    where trailing rows that no window reaches need no padding at all).
    """
    kernel, stride, pad, dilation = pool_options(op, kernel_size, stride, padding, dilation)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: padding {pad} must be at most half the kernel size {kernel} "
                         f"(input shape {x.shape})")
    n, c, h, w = x.shape
    out = tuple(output_size(size, k, s, p, d, ceil_mode)
                for size, k, s, p, d in zip((h, w), kernel, stride, pad, dilation))
    if min(out) < 1:  # in ceil mode PyTorch accepts a kernel 1 larger than the padded input
        span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel))
        raise ValueError(f"{op}: kernel size {kernel} is larger than the padded input "
                         f"{h + 2 * pad[0]}x{w + 2 * pad[1]} (input shape {x.shape}, padding "
                         f"{pad}, stride {stride}, dilation {dilation}: spanning {span}, "
                         f"ceil_mode={ceil_mode}): output size would be {out}")
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - size - p)
             for o, s, k, d, size, p in zip(out, stride, kernel, dilation, (h, w), pad)]
    pads = (pad[0], extra[0], pad[1], extra[1])
    padded = (n, c, h + pads[0] + pads[1], w + pads[2] + pads[3])
    return Pool(kernel, stride, dilation, pads, padded, out, pad)


def _batched(op, x):
    """x (N, C, H, W) as it is, or an unbatched (C, H, W) as (1, C, H, W); and whether it
    was unbatched."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                         f"shape {x.shape}")
    return (x.reshape(1, *x.shape), True) if x.ndim == 3 else (x, False)


def _unbatched(y):
    """y (1, C, OH, OW) without its batch axis."""
    return y.reshape(*y.shape[1:])


def _crop(a, shape, pads):
    """The input-sized part of a padded array (a view; the array itself when unpadded)."""
    if not any(pads):
        return a
    h, w = shape[2:]
    return a[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]


# ----------------------------------------------------------------------------- max pooling
class MaxPool2d(Function):
    """y[n,c,oh,ow] = max_{i<KH, j<KW} xpad[n, c, oh*sh + i*dh, ow*sw + j*dw], xpad = x
    padded with -inf (ph, pw on top/left; what the last window needs on the bottom/right).

    dL/dx = gy routed to the argmax of each window (``MaxPool2dGrad``); windows sharing a
    pixel add up. Ties: the first maximum in row-major window order wins, as in PyTorch;
    a NaN in a window wins over numbers (the output is NaN, as PyTorch propagates it).

    Stores for backward only the argmax: the position k = i*KW + j of the maximum inside
    each window, one small unsigned integer per output element (uint8 for up to 256
    window positions: 1 byte per output, a quarter of the float32 output itself; uint16
    beyond). Neither the input nor its windows are kept: backward reads only x's shape
    (``reads_inputs = False``), so the input array is freed once its other users are done.
    """
    reads_inputs = False

    def __init__(self, geo, track=True):
        self.geo = geo
        self.track = track  # False: no gradient will be asked for, skip the argmax

    def forward(self, x):
        g = self.geo
        y, self.index = K.max_pool(x, g.kernel, g.stride, g.pads, g.out, self.track,
                                   g.dilation)
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self.index, self.inputs[0].shape, self.geo)(gy)


class MaxPool2dGrad(Function):
    """gx = gy scattered into zeros(x.shape) at the argmax of each window (adding up where
    windows overlap).

    One scatter-add (``kernels.pooling.max_pool_grad``) of gy into the padded gradient at
    the argmax positions: a pixel that is the maximum of several overlapping windows
    accumulates all of their gradients.

    Linear in gy with fixed argmax, so its adjoint is the gather ``ggy = ggx[argmax]``
    (``MaxPool2dGather``): the second derivative of max pooling w.r.t. the upstream
    gradient; w.r.t. x it is zero (piecewise linear).
    """

    reads_inputs = False  # (only shapes)

    def __init__(self, index, shape, geo):
        self.index, self.shape, self.geo = index, shape, geo

    def forward(self, gy):
        g = self.geo
        gx = K.max_pool_grad(gy, self.index, g.kernel, g.stride, g.padded, g.dilation)
        return _crop(gx, self.shape, g.pads)

    def backward(self, ggx):
        return MaxPool2dGather(self.index, self.geo)(ggx)


class MaxPool2dGather(Function):
    """ggy = ggx read at the argmax of each window (zero padding: the argmax is never in
    the padding). Adjoint of ``MaxPool2dGrad``, which is therefore its backward."""

    reads_inputs = False  # (only shapes)

    def __init__(self, index, geo):
        self.index, self.geo = index, geo

    def forward(self, ggx):
        g = self.geo
        return K.max_pool_gather(pad2d(ggx, g.pads, 0), self.index, g.kernel, g.stride,
                                 g.dilation)

    def backward(self, gy):
        return MaxPool2dGrad(self.index, self.inputs[0].shape, self.geo)(gy)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling of x (N, C, H, W) or unbatched (C, H, W), as
    ``torch.nn.functional.max_pool2d`` (same parameters, in the same order).

    ``kernel_size``, ``stride`` (default: ``kernel_size``), ``padding`` and ``dilation``
    (the taps of a window are ``dilation`` pixels apart) are ints or (height, width)
    pairs. Padding is implicit -inf (it never wins) and may be at most half the kernel.
    Output size per axis: floor((H + 2p - d (k - 1) - 1) / s) + 1, or with ``ceil_mode``
    ceil(...) + 1 dropping a last window that would start beyond the input and the left
    padding (PyTorch's rule); ceil-mode windows that overhang the bottom/right are padded
    with -inf too. Floating-point or integer x (PyTorch's dtypes; integer padding is the
    dtype's smallest value), not bool or complex.

    ``return_indices=True`` returns ``(y, indices)``: indices (int64, y's shape, not
    differentiable) holds where each maximum is, as a flat index h*W + w into its input
    plane (H, W) (torch's convention, what max_unpool takes).
    """
    x = as_tensor(x, op='max_pool2d')
    check_float('max_pool2d', integers=True, input=x)
    check_bool('max_pool2d: return_indices', return_indices)
    x4, unbatched = _batched('max_pool2d', x)
    geo = _geometry('max_pool2d', x4, kernel_size, stride, padding, dilation, ceil_mode)
    fn = MaxPool2d(geo, return_indices or (x.requires_grad and is_grad_enabled()))
    y = fn(x4)
    y = _unbatched(y) if unbatched else y
    if not return_indices:
        return y
    indices = K.plane_indices(fn.index, geo.kernel, geo.stride, geo.dilation, geo.padding,
                              x4.shape[3])
    return y, Tensor(indices[0] if unbatched else indices)


# ----------------------------------------------------------------------------- avg pooling
class AvgPool2d(Function):
    """y[n,c,oh,ow] = (1 / D[oh, ow]) * sum_{i<KH, j<KW} xpad[n, c, oh*sh + i, ow*sw + j],
    xpad = x zero-padded, with the divisor D (``avg_divisor``): KH*KW by default (PyTorch's
    count_include_pad=True, floor mode), a per-window count of the pixels of the window that
    lie in the padded input (count_include_pad=True) or in the input itself (False) when
    ceil_mode or count_include_pad=False makes them differ, or ``divisor_override``.

    dL/dx = col2im(gy / D): every pixel gets gy/D from each window that reads it
    (``AvgPool2dGrad``). Stores nothing (D is a number or a small (OH, OW) array).
    """

    reads_inputs = False  # (only shapes)

    def __init__(self, geo, divisor):
        self.geo, self.divisor = geo, divisor

    def forward(self, x):
        g = self.geo
        return K.avg_pool(x, g.kernel, g.stride, g.pads, g.out, self.divisor)

    def backward(self, gy):
        return AvgPool2dGrad(self.inputs[0].shape, self.geo, self.divisor)(gy)


class AvgPool2dGrad(Function):
    """gx = col2im(gy / D) cropped to x's shape. Linear in gy; its adjoint (and so its
    backward) is average pooling itself with the same divisor: ggy = avg_pool2d(ggx)."""

    reads_inputs = False  # (only shapes)

    def __init__(self, shape, geo, divisor):
        self.shape, self.geo, self.divisor = shape, geo, divisor

    def forward(self, gy):
        g = self.geo
        gx = K.avg_pool_grad(gy, g.kernel, g.stride, g.padded, self.divisor)
        return _crop(gx, self.shape, g.pads)

    def backward(self, ggx):
        return AvgPool2d(self.geo, self.divisor)(ggx)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling of x (N, C, H, W) or unbatched (C, H, W), as
    ``torch.nn.functional.avg_pool2d`` (same parameters, in the same order): zero padding.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` (at most half the
    kernel) are ints or (height, width) pairs; ``ceil_mode`` as in max_pool2d. Each window
    is divided by ``divisor_override`` (a nonzero int) if given, else, exactly as torch,
    by the number of its pixels that lie in the input padded by ``padding`` on every side
    (count_include_pad=True: KH*KW except for ceil-mode windows overhanging the bottom/right
    padding) or in the input itself (count_include_pad=False). Floating-point x only
    (docs/dtypes.md); a float16 x is summed in float32.
    """
    x = as_tensor(x, op='avg_pool2d')
    check_float('avg_pool2d', input=x)
    for name, flag in (('ceil_mode', ceil_mode), ('count_include_pad', count_include_pad)):
        check_bool(f"avg_pool2d: {name}", flag)
    if divisor_override is not None:
        divisor_override = check_int('avg_pool2d', 'divisor_override', divisor_override)
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must be a nonzero int or None, "
                             "got 0")
    x4, unbatched = _batched('avg_pool2d', x)
    geo = _geometry('avg_pool2d', x4, kernel_size, stride, padding, 1, ceil_mode)
    divisor = K.avg_divisor(x4.shape[2:], geo.kernel, geo.stride, geo.padding, geo.out,
                            count_include_pad, divisor_override, x4.data)
    y = AvgPool2d(geo, divisor)(x4)
    return _unbatched(y) if unbatched else y
