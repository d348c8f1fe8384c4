"""2-D pooling over NCHW images: max_pool2d and avg_pool2d (as torch.nn.functional).

Both read their windows through the shared strided view ``kernels.im2col.windows`` and
loop over the KH*KW kernel offsets only: each step is one whole-array operation on
``windows(x)[:, :, i, j]``, the strided slice ``x[:, :, i::sh, j::sw]`` (cropped to
OH x OW) that holds offset (i, j) of every window. Overlapping windows (e.g. 3x3 stride 2)
need no special case: in backward every offset adds its share into the gradient (col2im
for average pooling, a phase-wise scatter for max pooling), so a pixel read by several
windows accumulates all of their contributions.

Every backward is itself a ``Function`` whose backward is known in closed form (pooling
gradients are linear in the upstream gradient), so both ops differentiate twice and more.
"""
import numpy as np

from .. import backend, cpu
from ..kernels.im2col import col2im, output_size, pad2d, windows
from ..tensor import Function, as_tensor, is_grad_enabled


def _xp(array):
    return backend.get_array_module(array)


def _pair(op, name, value, minimum):
    """``value`` as a pair of ints, each at least ``minimum`` (ValueError naming ``op``)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else (
        tuple(value) if isinstance(value, (tuple, list)) else ())
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        kind = 'positive' if minimum == 1 else 'non-negative'
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return tuple(int(v) for v in pair)


def _geometry(op, x, kernel_size, stride, padding, ceil_mode):
    """Check the options against x's shape; return kernel, stride, pads, padded shape and
    output size.

    ``pads = (top, bottom, left, right)``: top/left are ``padding``; bottom/right are what
    the last window needs (more than ``padding`` in ceil mode, possibly less in floor mode,
    where trailing rows that no window reaches need no padding at all).
    """
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    kernel = _pair(op, 'kernel_size', kernel_size, 1)
    stride = kernel if stride is None else _pair(op, 'stride', stride, 1)
    pad = _pair(op, 'padding', padding, 0)
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


def _lowest(dtype):
    """The padding value of max pooling: -inf (the smallest integer for integer dtypes)."""
    dtype = np.dtype(dtype)
    return -np.inf if dtype.kind == 'f' else np.iinfo(dtype).min


def _index_dtype(count):
    """The smallest unsigned integer type that holds window positions 0 .. count-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count - 1 <= np.iinfo(dtype).max:
            return dtype
    return np.int64


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
        xp = _xp(x)
        kh, kw = self.kernel
        xpad = pad2d(x, self.pads, _lowest(x.dtype))
        cols = windows(xpad, self.kernel, self.stride, out_size=self.out)
        best = xp.empty(x.shape[:2] + tuple(self.out), x.dtype)
        dtype = np.dtype(_index_dtype(kh * kw))
        index = xp.zeros(best.shape, dtype) if self.track else None  # no gradient: no argmax

        def run(a, b):  # images a..b-1: a running max over the kernel offsets
            y = best[a:b]
            y[...] = cols[a:b, :, 0, 0]
            better, step = xp.empty(y.shape, dtype=bool), xp.empty(y.shape, dtype=dtype)
            for k in range(1, kh * kw):
                v = cols[a:b, :, k // kw, k % kw]
                if index is not None:  # strictly greater: an equal value keeps the first max
                    xp.greater(v, y, out=better)
                    # k grows, so max(index, k * better) sets index = k where v is better
                    xp.multiply(better, dtype.type(k), out=step)
                    xp.maximum(index[a:b], step, out=index[a:b])
                xp.maximum(y, v, out=y)  # (propagates NaN into the output)
        cpu.parallel_rows(run, cols)
        if index is not None and best.dtype.kind == 'f' and bool(xp.isnan(best).any()):
            index = self._nan_index(cols, dtype)
        self.index = index
        return best

    @staticmethod
    def _nan_index(cols, dtype):
        """Argmax when NaNs are present: the first NaN of a window, else its first maximum
        (np.argmax's rule, which is also PyTorch's)."""
        n, c, kh, kw, oh, ow = cols.shape
        return cols.reshape(n, c, kh * kw, oh, ow).argmax(axis=2).astype(dtype)

    def backward(self, gy):
        return MaxPool2dGrad(self.index, self.inputs[0].shape, self.kernel, self.stride,
                             self.pads, self.padded, self.out)(gy)


def _argmax_positions(index, kernel, stride, padded):
    """Where each window's argmax sits in the padded input, as a flat index.

    index (N, C, OH, OW) holds k = i*KW + j; the result (N, C, OH, OW), int32 where it fits, is
    ((n*C + c)*Hp + oh*sh + i)*Wp + ow*sw + j, a position in the padded input
    flattened to N*C*Hp*Wp numbers.
    """
    xp = _xp(index)
    n, c, oh, ow = index.shape
    (kh, kw), (sh, sw), (hp, wp) = kernel, stride, padded[2:]
    dtype = xp.int32 if n * c * hp * wp < 2 ** 31 else xp.int64
    corner = (xp.arange(oh, dtype=dtype) * (sh * wp)).reshape(oh, 1) + \
        xp.arange(ow, dtype=dtype) * sw                                   # (OH, OW)
    pos = (xp.arange(n * c, dtype=dtype) * (hp * wp)).reshape(n, c, 1, 1) + corner
    inside = xp.asarray([(k // kw) * wp + k % kw for k in range(kh * kw)], dtype=dtype)
    pos += inside[index]                                              # within the window
    return pos


class MaxPool2dGrad(Function):
    """gx = gy scattered into zeros(x.shape) at the argmax of each window (adding up where
    windows overlap).

    One unbuffered scatter-add (``np.add.at``, ``cupyx.scatter_add``) of gy into the
    flattened padded gradient at ``_argmax_positions``: repeated positions (a pixel that is
    the maximum of several overlapping windows) accumulate. The images are shared among
    the CPU threads.

    Linear in gy with fixed argmax, so its adjoint is the gather ``ggy = ggx[argmax]``
    (``MaxPool2dGather``): the second derivative of max pooling w.r.t. the upstream
    gradient; w.r.t. x it is zero (piecewise linear).
    """

    def __init__(self, index, shape, kernel, stride, pads, padded, out):
        self.index, self.shape, self.kernel, self.stride, self.pads, self.padded, self.out = (
            index, shape, kernel, stride, pads, padded, out)

    def forward(self, gy):
        xp = _xp(gy)
        gx = xp.empty(self.padded, dtype=gy.dtype)

        def run(a, b):  # images a..b-1: their own slice of gx
            part = gx[a:b]
            part[...] = 0
            pos = _argmax_positions(self.index[a:b], self.kernel, self.stride, self.padded)
            backend.scatter_add(part.reshape(-1), pos.reshape(-1), gy[a:b].reshape(-1))
        cpu.parallel_rows(run, gx)
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
        padded = pad2d(ggx, self.pads, 0)
        pos = _argmax_positions(self.index, self.kernel, self.stride, padded.shape)
        return padded.reshape(-1)[pos]

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
    with -inf too.
    """
    x = as_tensor(x)
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
        kh, kw = self.kernel
        cols = windows(pad2d(x, self.pads, 0), self.kernel, self.stride, out_size=self.out)
        y = cols[:, :, 0, 0].copy()
        for k in range(1, kh * kw):
            y += cols[:, :, k // kw, k % kw]
        y /= kh * kw
        return y

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
        xp = _xp(gy)
        (kh, kw), (oh, ow) = self.kernel, self.out
        share = gy / (kh * kw)
        n, c = gy.shape[:2]
        cols = xp.broadcast_to(share[:, :, None, None], (n, c, kh, kw, oh, ow))
        return _crop(col2im(cols, self.padded, self.stride), self.shape, self.pads)

    def backward(self, ggx):
        return AvgPool2d(self.kernel, self.stride, self.pads, self.padded, self.out)(ggx)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """2-D average pooling of x (N, C, H, W), as ``torch.nn.functional.avg_pool2d`` with its
    defaults (count_include_pad=True, ceil_mode=False): zero padding, divisor KH*KW.

    ``kernel_size``, ``stride`` (default: ``kernel_size``) and ``padding`` (at most half the
    kernel) are ints or (height, width) pairs.
    """
    x = as_tensor(x)
    kernel, stride, pads, padded, out = _geometry('avg_pool2d', x, kernel_size, stride,
                                                  padding, False)
    return AvgPool2d(kernel, stride, pads, padded, out)(x)

