"""2-D pooling over NCHW images: max_pool2d and avg_pool2d (as torch.nn.functional).

y[n, c, p, q] is the max (or the mean) of the KH x KW window of x at (p*sh - ph, q*sw - pw).
The readable versions are ``reference.max_pool2d`` and ``reference.avg_pool2d``: stack the
KH*KW offsets of every window and reduce them, autograd deriving the backward. The fast
ones here keep far less for backward (max pooling: one small integer per output, the
position of the maximum) and call the kernels of ``minidl/kernels/pooling.py``.

Every backward is itself a ``Function`` whose backward is known in closed form (pooling
gradients are linear in the upstream gradient), so both ops differentiate twice and more.
Overlapping windows (e.g. 3x3 stride 2) need no special case: in backward every window adds
its share into the gradient, so a pixel read by several windows accumulates all of them.
"""
from ..kernels import pooling as K
from ..kernels.im2col import pad2d
from ..tensor import Function, as_tensor, is_grad_enabled
from ..utils import check_float, output_size, pair


def _geometry(op, x, kernel_size, stride, padding, ceil_mode):
    """Check the options against x's shape; return kernel, stride, pads, padded shape and
    output size.

    ``pads = (top, bottom, left, right)``: top/left are ``padding``; bottom/right are what
    the last window needs (more than ``padding`` in ceil mode, possibly less in floor mode,
    where trailing rows that no window reaches need no padding at all).
    """
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    kernel = pair(op, 'kernel_size', kernel_size, 1)
    stride = kernel if stride is None else pair(op, 'stride', stride, 1)
    pad = pair(op, 'padding', padding, 0)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise ValueError(f"{op}: padding {pad} must be at most half the kernel size {kernel} "
                         f"(input shape {x.shape})")
    n, c, h, w = x.shape
    out = tuple(output_size(size, k, s, p, 1, ceil_mode)
                for size, k, s, p in zip((h, w), kernel, stride, pad))
    if min(out) < 1:  # in ceil mode PyTorch accepts a kernel 1 larger than the padded input
        raise ValueError(f"{op}: kernel size {kernel} is larger than the padded input "
                         f"{h + 2 * pad[0]}x{w + 2 * pad[1]} (input shape {x.shape}, "
                         f"padding {pad}, stride {stride}, ceil_mode={ceil_mode}): "
                         f"output size would be {out}")
    extra = [max(0, (o - 1) * s + k - size - p)
             for o, s, k, size, p in zip(out, stride, kernel, (h, w), pad)]
    pads = (pad[0], extra[0], pad[1], extra[1])
    padded = (n, c, h + pads[0] + pads[1], w + pads[2] + pads[3])
    return kernel, stride, pads, padded, out


def _crop(a, shape, pads):
    """The input-sized part of a padded array (a view; the array itself when unpadded)."""
    if not any(pads):
        return a
    h, w = shape[2:]
    return a[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + w]


# ----------------------------------------------------------------------------- max pooling
class MaxPool2d(Function):
    """y[n,c,oh,ow] = max over the KH x KW window at (oh*sh - ph, ow*sw - pw), padding -inf.

    dL/dx = gy routed to the argmax of each window (``MaxPool2dGrad``); windows sharing a
    pixel add up. Ties: the first maximum in row-major window order wins, as in PyTorch;
    a NaN in a window wins over numbers (the output is NaN, as PyTorch propagates it).

    Stores for backward only the argmax: the position k = i*KW + j of the maximum inside
    each window, one small unsigned integer per output element (uint8 for up to 256
    window positions: 1 byte per output, a quarter of the float32 output itself; uint16
    beyond). Neither the padded input nor its windows are kept; the input Tensor is the
    one the engine already holds.
    """

    def __init__(self, kernel, stride, pads, padded, out, track=True):
        self.kernel, self.stride, self.pads, self.padded, self.out = (
            kernel, stride, pads, padded, out)
        self.track = track  # False: no gradient will be asked for, skip the argmax

    def forward(self, x):
        y, self.index = K.max_pool(x, self.kernel, self.stride, self.pads, self.out, self.track)
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self.index, self.inputs[0].shape, self.kernel, self.stride,
                             self.pads, self.padded, self.out)(gy)


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

    def __init__(self, index, shape, kernel, stride, pads, padded, out):
        self.index, self.shape, self.kernel, self.stride, self.pads, self.padded, self.out = (
            index, shape, kernel, stride, pads, padded, out)

    def forward(self, gy):
        gx = K.max_pool_grad(gy, self.index, self.kernel, self.stride, self.padded)
        return _crop(gx, self.shape, self.pads)

    def backward(self, ggx):
        return MaxPool2dGather(self.index, self.kernel, self.stride, self.pads,
                               self.out)(ggx)


class MaxPool2dGather(Function):
    """ggy = ggx read at the argmax of each window (zero padding: the argmax is never in
    the padding). Adjoint of ``MaxPool2dGrad``, which is therefore its backward."""

    def __init__(self, index, kernel, stride, pads, out):
        self.index, self.kernel, self.stride, self.pads, self.out = (
            index, kernel, stride, pads, out)

    def forward(self, ggx):
        return K.max_pool_gather(pad2d(ggx, self.pads, 0), self.index, self.kernel, self.stride)

    def backward(self, gy):
        x = self.inputs[0]
        n, c, h, w = x.shape
        padded = (n, c, h + self.pads[0] + self.pads[1], w + self.pads[2] + self.pads[3])
        return MaxPool2dGrad(self.index, x.shape, self.kernel, self.stride, self.pads,
                             padded, self.out)(gy)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """2-D max pooling of x (N, C, H, W), as ``torch.nn.functional.max_pool2d``.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` are ints or
    (height, width) pairs. Padding is implicit -inf (it never wins) and may be at most half
    the kernel. Output size per axis: floor((H + 2p - k) / s) + 1, or with ``ceil_mode``
    ceil(...) + 1 dropping a last window that would start beyond the input and the left
    padding (PyTorch's rule); ceil-mode windows that overhang the bottom/right are padded
    with -inf too. Floating-point or integer x (PyTorch's dtypes; integer padding is the
    dtype's smallest value), not bool or complex.
    """
    x = as_tensor(x, op='max_pool2d')
    check_float('max_pool2d', integers=True, input=x)
    kernel, stride, pads, padded, out = _geometry('max_pool2d', x, kernel_size, stride,
                                                  padding, ceil_mode)
    track = x.requires_grad and is_grad_enabled()
    return MaxPool2d(kernel, stride, pads, padded, out, track)(x)


# ----------------------------------------------------------------------------- avg pooling
class AvgPool2d(Function):
    """y[n,c,oh,ow] = (1 / (KH*KW)) * sum of the KH x KW window (zero padding counted in the
    divisor: PyTorch's count_include_pad=True).

    dL/dx = col2im(gy / (KH*KW)): every pixel gets gy/(KH*KW) from each window that reads
    it (``AvgPool2dGrad``). Stores nothing.
    """

    def __init__(self, kernel, stride, pads, padded, out):
        self.kernel, self.stride, self.pads, self.padded, self.out = (
            kernel, stride, pads, padded, out)

    def forward(self, x):
        return K.avg_pool(x, self.kernel, self.stride, self.pads, self.out)

    def backward(self, gy):
        return AvgPool2dGrad(self.inputs[0].shape, self.kernel, self.stride, self.pads,
                             self.padded, self.out)(gy)


class AvgPool2dGrad(Function):
    """gx = col2im(gy / (KH*KW)) cropped to x's shape. Linear in gy; its adjoint (and so
    its backward) is average pooling itself: ggy = avg_pool2d(ggx)."""

    def __init__(self, shape, kernel, stride, pads, padded, out):
        self.shape, self.kernel, self.stride, self.pads, self.padded, self.out = (
            shape, kernel, stride, pads, padded, out)

    def forward(self, gy):
        gx = K.avg_pool_grad(gy, self.kernel, self.stride, self.padded)
        return _crop(gx, self.shape, self.pads)

    def backward(self, ggx):
        return AvgPool2d(self.kernel, self.stride, self.pads, self.padded, self.out)(ggx)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D average pooling of x (N, C, H, W), as ``torch.nn.functional.avg_pool2d`` with its
    defaults (count_include_pad=True, ceil_mode=False): zero padding, divisor KH*KW.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` (at most half the
    kernel) are ints or (height, width) pairs. Floating-point x only (docs/dtypes.md); a
    float16 x is summed in float32.
    """
    x = as_tensor(x, op='avg_pool2d')
    check_float('avg_pool2d', input=x)
    kernel, stride, pads, padded, out = _geometry('avg_pool2d', x, kernel_size, stride,
                                                  padding, False)
    return AvgPool2d(kernel, stride, pads, padded, out)(x)

