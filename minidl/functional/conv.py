"""2-D convolution (NCHW, as ``torch.nn.functional.conv2d``) by im2col and matrix products.

Shapes: x (N, C, H, W), weight W (OC, C/G, KH, KW), bias b (OC,), G = groups, and
y (N, OC, OH, OW) with OH = (H + pt + pb - dh (KH - 1) - 1) // sh + 1 (likewise OW), where
the padding (pt, pb, pl, pr) = (top, bottom, left, right) is (ph, ph, pw, pw) for a numeric
``padding``, zero for 'valid', and for 'same' (stride 1) the dh (KH - 1) rows a window
spans beyond one pixel, split as torch does: pt = dh (KH - 1) // 2 on top, the rest (one
more for an even span) at the bottom; likewise left/right. With xpad = x zero-padded so
and g = o // (OC/G) the group of output channel o:

    y[n, o, p, q] = b[o] + sum_{c<C/G, i<KH, j<KW} W[o, c, i, j]
                                                   * xpad[n, g C/G + c, p sh + i dh, q sw + j dw]

im2col lays the windows of xpad out as one matrix per group,

    col[g, (c, i, j), (n, p, q)] = xpad[n, g C/G + c, p sh + i dh, q sw + j dw]
    col: (G, C/G KH KW, N OH OW)

so that with Wm = W reshaped (G, OC/G, C/G KH KW) the convolution is one GEMM per group:

    Y = Wm @ col   (G, OC/G, N OH OW),   Y[g, o, (n, p, q)] = y[n, g OC/G + o, p, q].

Backward, with gY = dL/dy in the same layout as Y (see docs/im2col.md):

    dL/dWm = gY @ col^T                                  Conv2dGradWeight(x, gy)
    dL/dx  = crop(col2im(Wm^T @ gY))                      Conv2dGradInput(gy, W)
    dL/db  = sum of gy over (n, p, q)

Both gradient maps are bilinear and their derivatives are again Conv2d, Conv2dGradInput and
Conv2dGradWeight, so conv2d can be differentiated any number of times.

``reference.conv2d`` computes the same y as a sum of KH*KW small products (one per kernel
offset), from Tensor ops alone; this file trades that for one big GEMM. The copies around
the GEMM (im2col, col2im, the layout transposes) and the budget for keeping col are in
``minidl/kernels/im2col.py``. A 3x3 stride-1 convolution on the CPU takes a faster road to
the same numbers (``minidl/kernels/winograd.py``): Winograd's F(2x2, 3x3), 2.25x fewer
multiplications and float32 numbers as close to PyTorch's as im2col's, or inside
``minidl.winograd_tile(4)`` F(4x4, 3x3), 4x fewer, for a float32 error 5-10x im2col's.
``MINIDL_WINOGRAD=0`` sends every convolution through im2col, ``=4`` makes F(4x4) the
default.
"""
from collections import namedtuple

from ..kernels import im2col as K
from ..kernels import winograd
from ..kernels.elementwise import ascontiguousarray
from ..backend import get_array_module
from ..kernels import layout
from ..kernels.layout import is_channels_last
from ..tensor import Function, as_tensor, is_grad_enabled
from ..utils import check_float, check_int, output_size, pair

# stride, dilation: (h, w) pairs of ints; pads: (top, bottom, left, right); groups: int
# channels_last: x was channels-last (kernels/layout.py) and groups == 1, so the GEMMs run
# on NHWC rows (``kernels.im2col.im2col_nhwc``) and y comes out channels-last too
Geometry = namedtuple('Geometry', 'stride pads dilation groups channels_last',
                      defaults=(False,))


# ----------------------------------------------------------------------------- layouts
def _out_hw(x_shape, kernel, geo):
    """(OH, OW) for input (N, C, H, W) and kernel (KH, KW)."""
    return tuple(output_size(x_shape[2 + a] + geo.pads[2 * a] + geo.pads[2 * a + 1],
                             kernel[a], geo.stride[a], 0, geo.dilation[a]) for a in (0, 1))


def _im2col(x, kernel, geo):
    """col (G, C/G*KH*KW, N*OH*OW) of x (N, C, H, W): im2col's matrix, one block per group."""
    col = K.im2col(x, kernel, geo.stride, geo.pads, geo.dilation)
    return col.reshape(geo.groups, col.shape[0] // geo.groups, -1)


def _col2im(gcol, x_shape, kernel, out_hw, geo, out=None):
    """Adjoint of _im2col: gcol (G, C/G*KH*KW, N*OH*OW) summed back into (N, C, H, W)."""
    return K.col2im(gcol.reshape(-1, gcol.shape[-1]), x_shape, kernel, geo.stride,
                    geo.pads, geo.dilation, out_hw, out)


def _weight_matrix(w, groups):
    """W (OC, C/G, KH, KW) as Wm (G, OC/G, C/G*KH*KW) (a view)."""
    return w.reshape(groups, w.shape[0] // groups, -1)


def _to_matrix(y, groups):
    """y (N, OC, OH, OW) as Y (G, OC/G, N*OH*OW), the layout of Wm @ col."""
    n, oc, oh, ow = y.shape
    y = y.reshape(n, groups, oc // groups, oh * ow).transpose(1, 2, 0, 3)
    return ascontiguousarray(y).reshape(groups, oc // groups, n * oh * ow)


def _from_matrix(y, n, out_hw, out, bias=None):
    """out (N, OC, OH, OW) = Y (G, OC/G, N*OH*OW) in that layout (+ bias (OC,), added
    into Y)."""
    g, m, _ = y.shape
    if bias is not None:  # (on Y's rows: one contiguous run per channel)
        y.reshape(g * m, -1)[...] += bias.reshape(-1, 1)
    out[...] = y.reshape(g * m, n, *out_hw).transpose(1, 0, 2, 3)


def _chunks(x_shape, kernel, out_channels, out_hw, dtype, xp):
    """The chunks of images (start, stop) that the GEMMs of an NCHW convolution of x
    (``x_shape``) into ``out_channels`` go through, a chunk at a time on the CPU, sized by
    the larger of col and Y per image (``kernels.im2col.image_chunks``); the same for its
    forward and both gradients."""
    return K.image_chunks(x_shape[0], out_hw[0] * out_hw[1],
                          max(x_shape[1] * kernel[0] * kernel[1], out_channels),
                          dtype.itemsize, xp)


def _weight_rows(w):
    """W (OC, C, KH, KW) as the (OC, KH*KW*C) matrix whose columns match im2col_nhwc's
    (one small copy)."""
    return ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)


def _gemm_layout(gy, geo):
    """gy (N, OC, OH, OW) as the GEMMs read it: gY (G, OC/G, N*OH*OW), or for a
    channels-last geometry the (N*OH*OW, OC) rows of its NHWC memory."""
    return K.rows(gy) if geo.channels_last else _to_matrix(gy, geo.groups)


def _bias_grad(gy, geo):
    """dL/db = gy summed over (N, OH, OW), as Tensor ops (differentiable again); for a
    channels-last gy as column sums of its (N*OH*OW, OC) rows, which NumPy runs 5-10x
    faster than a sum over the strided axes (0, 2, 3)."""
    if geo.channels_last and is_channels_last(gy.data):
        return gy.transpose(0, 2, 3, 1).reshape(-1, gy.shape[1]).sum(axis=0)
    return gy.sum(axis=(0, 2, 3))


_NOW = object()  # a gradient Function's road: decided when it runs (not by a forward)


def _winograd(x, out_channels, kernel, geo):
    """The Winograd tiling this convolution of x into ``out_channels`` goes through now, or
    None (im2col). The same answer for a layer's forward (x into OC), its input gradient
    (gy into C) and its weight gradient (x, gy); a forward passes its answer to its
    gradients, so that they take its road (and the kept ``col`` is what they expect) even
    when they run outside its ``winograd.tile`` block. A Winograd result with an inf or a
    NaN is computed again by im2col (``finite=True``): Winograd mixes the numbers of a
    whole tile, so one inf would reach outputs whose windows do not hold it (PyTorch's,
    and im2col's, stay finite there)."""
    ok = winograd.applies(x, kernel, geo.stride, geo.pads, geo.dilation, geo.groups,
                          out_channels)
    return winograd.TILING if ok else None


# ----------------------------------------------------------------------------- Functions
class Conv2d(Function):
    """y = conv(x, W) + b, computed as Y = Wm @ col (+ b); shapes in the module docstring.

    Backward: dL/dx = Conv2dGradInput(gy, W),  dL/dW = Conv2dGradWeight(x, gy),
    dL/db = gy summed over (N, OH, OW). Kept for backward: the inputs x and W
    (``self.inputs``) and, when W will need a gradient (``keep_col``) and the batch went
    through in one chunk (a GPU, or a small CPU batch: ``_chunks``), the col matrix
    (C*KH*KW x N*OH*OW numbers, KH*KW times x's size for stride 1) if it is at most
    ``kernels.im2col.KEEP_COL_MAX_BYTES``: dL/dW reuses it instead of copying the windows
    again, and releases it once used. A CPU batch of several chunks keeps no col, nor
    does a channels-last convolution: they build col a few images at a time, in the
    cache, for each of their three GEMMs (``kernels.im2col``).
    """

    def __init__(self, geo, keep_col=False):
        self.geo, self.keep_col, self.col, self.tiling = geo, keep_col, None, None

    def forward(self, x, w, b=None):
        self.tiling, y = _winograd(x, w.shape[0], w.shape[2:], self.geo), None
        if self.tiling:  # (col: Winograd's V, 4x or 2.25x x)
            keep = self.keep_col and \
                winograd.tile_bytes(x, self.geo.pads, self.tiling) <= K.KEEP_COL_MAX_BYTES
            y, col = winograd.conv2d(x, w, self.geo.pads, keep_tiles=keep, tiling=self.tiling,
                                     finite=True)
            self.tiling = self.tiling if y is not None else None  # (None: inf or NaN)
            if y is not None and b is not None:
                y += b.reshape(1, -1, 1, 1)
        if y is None:
            y, col = self._by_im2col(x, w, b)
        if self.keep_col and col is not None:
            self.col = K.keep_col(col)
        return y

    def _by_im2col(self, x, w, b=None):
        """(y, col) by im2col: Y = Wm @ col + b, a chunk of images at a time (``_chunks``;
        col: the batch's, when it was one chunk, else None), or for a channels-last x the
        same GEMM transposed, Y^T = col^T @ Wm^T, with col built in blocks (col None)."""
        out_hw, kernel = _out_hw(x.shape, w.shape[2:], self.geo), w.shape[2:]
        if self.geo.channels_last:
            y = K.from_rows(K.conv_nhwc(x, _weight_rows(w), kernel, self.geo.stride,
                                        self.geo.pads, self.geo.dilation, out_hw),
                            x.shape[0], out_hw)
            if b is not None:
                y += b.reshape(1, -1, 1, 1)
            return y, None
        xp, wm = get_array_module(x), _weight_matrix(w, self.geo.groups)
        y = xp.empty((x.shape[0], w.shape[0], *out_hw), x.dtype)
        chunks, cols = _chunks(x.shape, kernel, w.shape[0], out_hw, x.dtype, xp), []

        def chunk(a, e):  # images a..e-1
            col = _im2col(x[a:e], kernel, self.geo)
            _from_matrix(wm @ col, e - a, out_hw, y[a:e], b)
            cols.append(col if len(chunks) == 1 else None)
        K.for_each_chunk(chunk, chunks, y.size)
        return y, cols[0]

    def backward(self, gy):
        x, w = self.inputs[:2]
        need = self.needs_input_grad
        col, self.col = self.col, None
        # both gradients read gy in the GEMM layout gY: transposed once, shared (unless
        # they go through it a chunk at a time)
        by_chunks = not self.geo.channels_last and len(_chunks(
            x.shape, w.shape[2:], w.shape[0], gy.shape[2:], x.dtype, get_array_module(x.data))) > 1
        gY = _gemm_layout(gy.data, self.geo) if need[0] and need[1] and not self.tiling \
            and not by_chunks else None
        gx = Conv2dGradInput(self.geo, x.shape, gY, self.tiling)(gy, w) if need[0] else None
        gw = Conv2dGradWeight(self.geo, w.shape[2:], col, gY, self.tiling)(x, gy) \
            if need[1] else None
        if len(self.inputs) == 2:
            return gx, gw
        return gx, gw, (_bias_grad(gy, self.geo) if need[2] else None)


class Conv2dGradInput(Function):
    """gx = dL/dx of conv2d for upstream gradient gy and weight W (a transposed convolution).

    dL/dcol = Wm^T @ gY  (G, C/G*KH*KW, N*OH*OW),  gx = crop(col2im(dL/dcol)), shape
    ``x_shape`` (needed: several H give the same OH). Bilinear in (gy, W), and
    <ggx, gx> = <conv(ggx, W), gy>, so for an upstream ggx:
    dL/dgy = conv2d(ggx, W) (no bias),  dL/dW = Conv2dGradWeight(ggx, gy).
    """

    def __init__(self, geo, x_shape, gY=None, tiling=_NOW):
        self.geo, self.x_shape, self.gY = geo, tuple(x_shape), gY  # gY: gy as a matrix
        self.tiling = tiling  # the forward's Winograd road (None: im2col)

    def forward(self, gy, w):
        gY, self.gY = self.gY, None
        if gy.size == 0:  # an empty batch (or an empty image): nothing flows back
            gx = layout.empty(self.x_shape, gy.dtype, get_array_module(gy),
                              self.geo.channels_last)
            gx[...] = 0
            return gx
        tiling = _winograd(gy, w.shape[1], w.shape[2:], self.geo) if self.tiling is _NOW \
            else self.tiling
        if tiling:
            gx = winograd.grad_input(gy, w, self.geo.pads, tiling, finite=True)
            if gx is not None:  # (None: inf or NaN in it, computed again below)
                return gx
        if self.geo.channels_last:  # dL/dcol^T = gY^T @ Wm, rows of NHWC
            gY = _gemm_layout(gy, self.geo) if gY is None else gY
            return K.conv_nhwc_grad_input(gY, _weight_rows(w), self.x_shape, w.shape[2:],
                                          self.geo.stride, self.geo.pads,
                                          self.geo.dilation, gy.shape[2:])
        xp, wmt = get_array_module(gy), _weight_matrix(w, self.geo.groups).transpose(0, 2, 1)
        gx = xp.empty(self.x_shape, gy.dtype)

        def chunk(a, e):  # images a..e-1: dL/dcol = Wm^T @ gY, summed back into gx
            gYc = gY if gY is not None else _to_matrix(gy[a:e], self.geo.groups)
            _col2im(wmt @ gYc, (e - a, *self.x_shape[1:]), w.shape[2:], gy.shape[2:],
                    self.geo, out=gx[a:e])
        K.for_each_chunk(chunk, _chunks(self.x_shape, w.shape[2:], w.shape[0], gy.shape[2:],
                                        gy.dtype, xp), gx.size)
        return gx

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = Conv2d(self.geo)(ggx, w) if self.needs_input_grad[0] else None
        g_w = Conv2dGradWeight(self.geo, w.shape[2:])(ggx, gy) \
            if self.needs_input_grad[1] else None
        return g_gy, g_w


class Conv2dGradWeight(Function):
    """gW = dL/dW of conv2d for input x and upstream gradient gy.

    dL/dWm = gY @ col^T  (G, OC/G, C/G*KH*KW), reshaped to (OC, C/G, KH, KW); col is
    im2col(x): the forward's, when it kept it, else computed here. Bilinear in (x, gy), and
    <ggW, gW> = <conv(x, ggW), gy>, so for an upstream ggW:
    dL/dx = Conv2dGradInput(gy, ggW),  dL/dgy = conv2d(x, ggW).
    """

    def __init__(self, geo, kernel, col=None, gY=None, tiling=_NOW):
        self.geo, self.kernel, self.col, self.gY = geo, tuple(kernel), col, gY
        self.tiling = tiling  # the forward's Winograd road (None: im2col)

    def forward(self, x, gy):
        col, self.col = self.col, None
        gY, self.gY = self.gY, None
        if gy.size == 0 or x.size == 0:  # an empty batch: no term in the sum
            return get_array_module(x).zeros((gy.shape[1], x.shape[1] // self.geo.groups,
                                              *self.kernel), x.dtype)
        tiling = _winograd(x, gy.shape[1], self.kernel, self.geo) if self.tiling is _NOW \
            else self.tiling
        if tiling:
            gw = winograd.grad_weight(x, gy, self.geo.pads, col, tiling, finite=True)
            if gw is not None:  # (None: inf or NaN in it, computed again below)
                return gw
            col = None  # (Winograd's V: not the im2col matrix)
        if self.geo.channels_last:  # dL/dWm = gY @ col from the NHWC rows
            gY = _gemm_layout(gy, self.geo) if gY is None else gY
            gw = K.conv_nhwc_grad_weight(x, gY, self.kernel, self.geo.stride, self.geo.pads,
                                         self.geo.dilation, gy.shape[2:])  # (OC, KH*KW*C)
            return ascontiguousarray(gw.reshape(gy.shape[1], *self.kernel, x.shape[1])
                                     .transpose(0, 3, 1, 2))
        g = self.geo.groups

        def term(a, e):  # images a..e-1: (col @ gY^T), (G, C/G*KH*KW, OC/G)
            # (col @ gY^T)^T rather than gY @ col^T: the same numbers, but OpenBLAS is up
            # to 9x faster on this orientation when N*OH*OW is long (benchmarks/RESULTS.md)
            colc = col if col is not None else _im2col(x[a:e], self.kernel, self.geo)
            gYc = gY if gY is not None else _to_matrix(gy[a:e], g)
            return colc @ gYc.transpose(0, 2, 1)
        chunks = _chunks(x.shape, self.kernel, gy.shape[1], gy.shape[2:], x.dtype,
                         get_array_module(x))
        k = x.shape[1] // g * self.kernel[0] * self.kernel[1]
        gw = K.sum_over_chunks(term, chunks, (g, k, gy.shape[1] // g), x.dtype,
                               items=x.size * self.kernel[0] * self.kernel[1])
        return gw.transpose(0, 2, 1).reshape(gy.shape[1], x.shape[1] // g, *self.kernel)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = Conv2dGradInput(self.geo, x.shape)(gy, ggw) if self.needs_input_grad[0] else None
        g_gy = Conv2d(self.geo)(x, ggw) if self.needs_input_grad[1] else None
        return g_x, g_gy


# ----------------------------------------------------------------------------- API
def _pads(padding, kernel, stride, dilation):
    """(top, bottom, left, right) zero padding for conv2d's ``padding`` option: an int or an
    (h, w) pair (both sides alike), 'valid' (none) or 'same' (stride 1 only, as in torch:
    the output has the input's size; an odd span d (k - 1) puts its extra row/column at the
    bottom/right)."""
    if isinstance(padding, str):
        if padding == 'valid':
            return (0, 0, 0, 0)
        if padding != 'same':
            raise ValueError(f"conv2d: padding must be 'same', 'valid', an int or a pair of "
                             f"ints, got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1 (as in torch), got "
                             f"stride {stride}")
        spans = [d * (k - 1) for d, k in zip(dilation, kernel)]
        return (spans[0] // 2, spans[0] - spans[0] // 2, spans[1] // 2, spans[1] - spans[1] // 2)
    ph, pw = pair('conv2d', 'padding', padding)
    return (ph, ph, pw, pw)


def _geometry(x, w, b, stride, padding, dilation, groups):
    """Check the shapes and options of a conv2d call on a 4-D x; return its Geometry."""
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (OC, C/groups, KH, KW), "
                         f"got shape {w.shape}")
    if min(w.shape) < 1:
        raise ValueError(f"conv2d: weight {w.shape} (OC, C/groups, KH, KW) must have at "
                         f"least one output channel, input channel and kernel row and column")
    stride = pair('conv2d', 'stride', stride)
    dilation = pair('conv2d', 'dilation', dilation)
    if min(stride) < 1 or min(dilation) < 1:
        raise ValueError(f"conv2d: stride {stride} and dilation {dilation} must be positive "
                         f"(input {x.shape}, weight {w.shape})")
    pads = _pads(padding, w.shape[2:], stride, dilation)
    if min(pads) < 0:
        raise ValueError(f"conv2d: padding {(pads[0], pads[2])} must be non-negative "
                         f"(input {x.shape}, weight {w.shape})")
    geo = Geometry(stride, pads, dilation, groups)
    (c, oc), g = (x.shape[1], w.shape[0]), check_int('conv2d', 'groups', groups, 1)
    if c % g:
        raise ValueError(f"conv2d: input channels C={c} of input {x.shape} are not "
                         f"divisible by groups={g}")
    if oc % g:
        raise ValueError(f"conv2d: output channels OC={oc} of weight {w.shape} are not "
                         f"divisible by groups={g}")
    if c != w.shape[1] * g:
        raise ValueError(f"conv2d: channel mismatch: input {x.shape} has C={c} channels, "
                         f"weight {w.shape} with groups={g} expects "
                         f"weight.shape[1] * groups = {w.shape[1] * g}")
    if b is not None and b.shape != (oc,):
        raise ValueError(f"conv2d: bias shape {b.shape} must be ({oc},) for weight {w.shape}")
    oh, ow = _out_hw(x.shape, w.shape[2:], geo)
    if oh < 1 or ow < 1:
        span = tuple(d * (k - 1) + 1 for d, k in zip(geo.dilation, w.shape[2:]))
        padded = (x.shape[2] + pads[0] + pads[1], x.shape[3] + pads[2] + pads[3])
        raise ValueError(f"conv2d: kernel {w.shape[2:]} of weight {w.shape} with dilation "
                         f"{geo.dilation} spans {span}, larger than the padded input {padded} "
                         f"(input {x.shape}, padding {padding!r})")
    return geo._replace(groups=g)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with weight (OC, C/groups, KH, KW) plus bias (OC,).

    Exactly ``torch.nn.functional.conv2d`` (a cross-correlation, zero padding); stride,
    padding and dilation are an int or an (h, w) pair; ``padding`` may also be 'valid' (no
    padding) or 'same' (output size = input size; stride 1 only; an even kernel gets its
    extra row/column of padding at the bottom/right, as in torch). An unbatched x (C, H, W)
    is convolved as a batch of one and gives (OC, OH, OW). x, weight and bias must have one
    floating-point dtype (docs/dtypes.md); returns (N, OC, OH, OW), in that dtype.
    """
    x, weight = as_tensor(x, op='conv2d'), as_tensor(weight, op='conv2d')
    bias = None if bias is None else as_tensor(bias, op='conv2d')
    check_float('conv2d', input=x, weight=weight, bias=bias)
    if x.ndim not in (3, 4):
        raise ValueError(f"conv2d: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got "
                         f"shape {x.shape}")
    unbatched = x.ndim == 3
    if unbatched:  # torch's rule: a batch of one, returned without the batch axis
        x = x.reshape(1, *x.shape)
    geo = _geometry(x, weight, bias, stride, padding, dilation, groups)
    geo = geo._replace(channels_last=geo.groups == 1 and is_channels_last(x.data))
    conv = Conv2d(geo, keep_col=weight.requires_grad and is_grad_enabled())
    y = conv(x, weight) if bias is None else conv(x, weight, bias)
    return y.reshape(*y.shape[1:]) if unbatched else y
