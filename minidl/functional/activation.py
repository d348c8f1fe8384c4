"""Activations: relu, gelu, tanh, sigmoid, softmax, log_softmax.

Backward passes that are cheapest in terms of the output ``y`` read it as
``self.outputs[0]()``: the output Tensor itself, so that a gradient built from it can be
differentiated again (its ``grad_fn`` is this very function).
"""
from ..backend import get_array_module
from ..kernels import elementwise as K
from ..tensor import Function, as_tensor, is_grad_enabled
from ..utils import check_axis, check_float, torch_alias
from .math import _floating, absolute, exp, sum


class ReLU(Function):
    """y = max(x, 0).   dL/dx = gy * [x > 0]   (0 at x = 0, as PyTorch; gy at a NaN x, as
    PyTorch, which zeroes where x <= 0): ``ReLUGrad``."""

    def forward(self, x):
        return K.relu(x)

    def backward(self, gy):
        return ReLUGrad(self.inputs[0].data)(gy)


class ReLUGrad(Function):
    """gx = gy * [not x <= 0] for the saved input x of a ReLU. Linear in gy with a fixed mask,
    so its own backward is the same masking: ReLUGrad(x)(ggx)."""

    def __init__(self, x):
        self.x = x

    def forward(self, gy):
        return K.relu_grad(gy, self.x)

    def backward(self, ggx):
        return ReLUGrad(self.x)(ggx)


GELU_APPROXIMATIONS = ('none', 'tanh')


class GELU(Function):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016): x weighted by the probability
    that a standard normal variable is below x,

        'none':  y = x Phi(x),          Phi(x) = (1 + erf(x / sqrt2)) / 2
        'tanh':  y = x (1 + t) / 2,     t = tanh u,  u = sqrt(2/pi) (x + 0.044715 x^3)

    (the tanh form replaces Phi by a tanh of a cubic, within 1.8e-4 of it; y within 4.8e-4).

    Backward. 'none', by the product rule, with Phi' = phi, the normal density:

        dy/dx = Phi(x) + x phi(x),      phi(x) = e^{-x^2/2} / sqrt(2 pi)

    'tanh', with d tanh u / du = 1 - t^2 and u' = du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2):

        dy/dx = (1 + t) / 2 + x (1 - t^2) u' / 2

    dL/dx = gy * dy/dx: ``GELUGrad``. What GELU keeps for backward is its input x and, for
    'none' on the CPU when a gradient will be asked for (``keep_cdf``), Phi(x): one more
    array of x's size, which spares the backward about two thirds of its passes. phi and t
    are recomputed from x (kernels/elementwise.py, with kernels/erf.py).
    """

    def __init__(self, approximate, keep_cdf=False):
        self.approximate, self.keep_cdf, self.cdf = approximate, keep_cdf, None

    def forward(self, x):
        if self.keep_cdf and self.approximate == 'none':
            y, self.cdf = K.gelu_keeping_cdf(x)
            return y
        return K.gelu(x, self.approximate)

    def backward(self, gy):
        cdf, self.cdf = self.cdf, None
        return GELUGrad(self.approximate, cdf)(gy, self.inputs[0])


class GELUGrad(Function):
    """gx = gy * g(x), g = dy/dx of a GELU at its input x (see GELU).

    Linear in gy, so dL/dgy = ggx * g(x): GELUGrad again. Towards x it is gy times the
    second derivative g'(x), dL/dx = ggx * gy * g'(x), where (``_gelu_second_derivative``)

        'none':  g'(x) = 2 phi(x) + x phi'(x) = phi(x) (2 - x^2)          (phi' = -x phi)
        'tanh':  g'(x) = (1 - t^2) u' + (x/2) d/dx[(1 - t^2) u']
                       = (1 - t^2) (u' - x t u'^2 + x u''/2)
                 with x u''/2 = 3 * 0.044715 sqrt(2/pi) x^2

    (using d(1 - t^2)/dx = -2 t (1 - t^2) u'; 1 - t^2 is computed as sech^2 u = 4e / (1 + e)^2,
    e = e^{-2|u|}, which does not cancel to 0 where t rounds to +-1). g' is written with Tensor
    ops, so every derivative of a GELU can be differentiated again.
    """

    def __init__(self, approximate, cdf=None):
        self.approximate, self.cdf = approximate, cdf  # cdf: Phi(x), if GELU kept it

    def forward(self, gy, x):
        cdf, self.cdf = self.cdf, None
        return K.gelu_grad(gy, x, self.approximate, cdf)

    def backward(self, ggx):
        gy, x = self.inputs
        dgy = GELUGrad(self.approximate)(ggx, x) if self.needs_input_grad[0] else None
        dx = ggx * gy * _gelu_second_derivative(x, self.approximate) \
            if self.needs_input_grad[1] else None
        return dgy, dx


def _gelu_second_derivative(x, approximate):
    """d^2y/dx^2 of GELU at the Tensor x, from Tensor ops (formulas in GELUGrad)."""
    x2 = x * x
    if approximate == 'tanh':
        k, c = K.SQRT_2_OVER_PI, K.GELU_CUBIC
        u = k * x * (1 + c * x2)
        e = exp(-2 * absolute(u))
        sech2 = 4 * e / ((1 + e) * (1 + e))  # 1 - t^2, without cancelling where |t| ~ 1
        du = k * (1 + 3 * c * x2)
        return sech2 * (du - x * tanh(u) * du * du + 3 * c * k * x2)
    return exp(-0.5 * x2) * K.INV_SQRT_2PI * (2 - x2)


class Tanh(Function):
    """y = tanh x.   dL/dx = gy * (1 - y^2)."""

    reads_outputs = True

    def forward(self, x):
        return get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x).   dL/dx = gy * y * (1 - y).

    Forward as (tanh(x/2) + 1) / 2: the same function, never overflowing for large |x|.
    """

    reads_outputs = True

    def forward(self, x):
        return (get_array_module(x).tanh(x * 0.5) + 1) * 0.5

    def backward(self, gy):
        y = self.outputs[0]()
        return gy * y * (1 - y)


class Softmax(Function):
    """y_i = e^{x_i} / sum_j e^{x_j} along ``axis`` (None for a 0-d x: y = 1).

    dL/dx = y * (gy - sum(gy * y, axis))   (the Jacobian diag(y) - y y^T applied to gy).
    An empty x gives an empty y (there is no maximum to shift by).
    """

    reads_outputs = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:
            return x.copy()
        e = get_array_module(x).exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.outputs[0]()
        return y * (gy - sum(gy * y, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - log sum_j e^{x_j} along ``axis`` (shifted by max x for stability; None
    for a 0-d x: y = 0).

    dL/dx = gy - softmax(x) * sum(gy, axis),   with softmax(x) = e^y.
    An empty x gives an empty y.
    """

    reads_outputs = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:
            return x.copy()
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.outputs[0]()
        return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)


def relu(x):
    """max(x, 0), for floating-point and integer tensors (not bool, as in PyTorch)."""
    x = as_tensor(x, op='relu')
    check_float('relu', integers=True, input=x)
    return ReLU()(x)


def gelu(x, approximate='none'):
    """x Phi(x), Phi the standard normal CDF (``approximate='none'``), or its tanh form
    x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (``'tanh'``), as torch.nn.functional.gelu;
    for a floating-point x (integers and bool are refused, as in PyTorch)."""
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be one of {GELU_APPROXIMATIONS}, got "
                         f"{approximate!r}")
    x = as_tensor(x, op='gelu')
    check_float('gelu', input=x)
    return GELU(approximate, keep_cdf=x.requires_grad and is_grad_enabled())(x)


def tanh(x):
    """tanh x; an integer or bool x is computed in float32, as PyTorch does."""
    return Tanh()(_floating(x, 'tanh'))


def sigmoid(x):
    """1 / (1 + e^-x); an integer or bool x is computed in float32, as PyTorch does."""
    return Sigmoid()(_floating(x, 'sigmoid'))


def _softmax_axis(op, x, axis):
    """x checked (floating-point) and ``axis`` as the axis the Function reduces: an index
    in [0, ndim), or None for a 0-d x (PyTorch takes axis 0 or -1 there)."""
    check_float(op, input=x)
    axis = check_axis(op, axis, x.shape)
    return axis if x.ndim else None


def softmax(x, axis=-1, *, dim=None):
    """e^x / sum e^x along ``axis`` (PyTorch's name ``dim`` too), for a floating-point x (an
    empty x gives an empty y)."""
    x = as_tensor(x, op='softmax')
    axis = torch_alias('softmax', 'axis', 'dim', axis, dim, -1)
    return Softmax(_softmax_axis('softmax', x, axis))(x)


def log_softmax(x, axis=-1, *, dim=None):
    """x - log sum e^x along ``axis`` (PyTorch's name ``dim`` too), for a floating-point x
    (an empty x gives an empty y)."""
    x = as_tensor(x, op='log_softmax')
    axis = torch_alias('log_softmax', 'axis', 'dim', axis, dim, -1)
    return LogSoftmax(_softmax_axis('log_softmax', x, axis))(x)
