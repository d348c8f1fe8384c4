"""Losses: fused softmax cross-entropy (PyTorch's options) and mean squared error."""
import numpy as np

from .. import backend
from ..tensor import Function, Tensor, as_tensor
from ..utils import check_float, check_int, check_number
from .activation import log_softmax, softmax

REDUCTIONS = ('mean', 'sum', 'none')
OP = 'softmax_cross_entropy'


def target_weights(xp, target, c, dtype, weight=None, ignore_index=-100, label_smoothing=0.0):
    """A (M, C): the coefficients of log p in each loss, loss_n = -sum_c A_nc log p_nc.

    Class indices t (M,):   A_nc = mask_n w_c ((1 - eps) [c == t_n] + eps / C),
    with mask_n = [t_n != ignore_index] (an ignored position has A_n = 0, hence no loss).
    Class probabilities q (M, C):   A_nc = w_c ((1 - eps) q_nc + eps / C).
    w = 1 without ``weight``. The target, the weight and the result are arrays of one dtype
    (the indices are integers).
    """
    eps = label_smoothing
    if target.dtype.kind == 'f':
        a = (1 - eps) * target + eps / c if eps else target.astype(dtype, copy=True)
    else:
        m = target.shape[0]
        keep = target != ignore_index
        a = xp.full((m, c), eps / c, dtype=dtype)
        a[xp.arange(m), xp.where(keep, target, 0)] += 1 - eps
        a *= keep[:, None]
    return a if weight is None else a * weight


def mean_denominator(xp, target, weight, ignore_index, dtype):
    """What reduction='mean' divides the summed losses by (PyTorch's rule): for class
    indices the sum of w[t_n] over the positions not ignored (their number without
    ``weight``; 0 when every target is ignored, so the mean is 0/0 = nan as in PyTorch);
    for class probabilities the number of positions M."""
    if target.dtype.kind == 'f':
        return xp.asarray(target.shape[0], dtype=dtype)
    keep = target != ignore_index
    if weight is None:
        return keep.sum().astype(dtype)
    return (weight[xp.where(keep, target, 0)] * keep).sum()


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(x) (x: (M, C) logits) against targets, in one numerically
    stable step; the inputs are x, and for class-probability targets also q.

    With p = softmax(x_n) and the coefficients A of ``target_weights`` (the smoothed
    one-hot or probability target, times the class weights w, zero at ignored positions):

        loss_n = -sum_c A_nc log p_nc = s_n logsumexp(x_n) - sum_c A_nc x_nc,  s_n = sum_c A_nc

    (log p is computed as x - max - log sum exp(x - max), finite for any finite logits).
    Then 'sum', 'none', or 'mean' = sum_n loss_n / D with D of ``mean_denominator``
    (D = 0 when every target is ignored: the mean is nan and its gradient 0, as PyTorch's).

    Gradients, for an upstream gradient g_n of loss_n (gy, gy / D, or gy_n for 'none'):
        dloss_n/dx_nc = s_n p_nc - A_nc   (= p - q without weights; 0 at ignored positions)
        dloss_n/dq_nc = -(1 - eps) w_c log p_nc   (class-probability targets only)
    Stores nothing beyond its inputs: backward recomputes A and softmax(x), the latter as
    a Tensor op, so the gradient is itself differentiable.
    """

    def __init__(self, target, weight, ignore_index, label_smoothing, reduction):
        self.target, self.weight, self.ignore_index = target, weight, ignore_index
        self.eps, self.reduction = label_smoothing, reduction

    def _weights(self, xp, target, c, dtype):
        return target_weights(xp, target, c, dtype, self.weight, self.ignore_index, self.eps)

    def _soft_weights(self, q):
        """A for a class-probability target q, as Tensor ops: dloss/dx then depends on q
        in the graph, so the gradient's own gradient has its cross term d^2 loss / dx dq."""
        a = (1 - self.eps) * q + self.eps / q.shape[1] if self.eps else q
        return a if self.weight is None else a * Tensor(self.weight)

    def forward(self, x, q=None):
        xp = backend.get_array_module(x)
        target = self.target if q is None else q
        shifted = x - x.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        loss = -(self._weights(xp, target, x.shape[1], x.dtype) * log_p).sum(axis=1)
        if self.reduction == 'none':
            return loss
        if self.reduction == 'sum':
            return loss.sum()
        with np.errstate(invalid='ignore', divide='ignore'):  # all ignored: 0/0 = nan
            return loss.sum() / mean_denominator(xp, target, self.weight, self.ignore_index,
                                                 x.dtype)

    def backward(self, gy):
        x, q = self.inputs[0], (self.inputs[1] if len(self.inputs) > 1 else None)
        xp = backend.get_array_module(x.data)
        target = self.target if q is None else q.data
        if self.reduction == 'none':
            gy = gy.reshape(x.shape[0], 1)
        elif self.reduction == 'mean':
            d = mean_denominator(xp, target, self.weight, self.ignore_index, x.dtype)
            with np.errstate(divide='ignore'):  # every target ignored: a zero gradient
                gy = gy * Tensor(xp.where(d != 0, 1 / d, 0).astype(x.dtype))
        a = Tensor(self._weights(xp, target, x.shape[1], x.dtype)) if q is None else \
            self._soft_weights(q)
        gx = (softmax(x, axis=1) * a.sum(axis=1, keepdims=True) - a) * gy \
            if self.needs_input_grad[0] else None
        if q is None:
            return gx
        gq = None
        if self.needs_input_grad[1]:
            w = 1.0 if self.weight is None else Tensor(self.weight)
            gq = log_softmax(x, axis=1) * (-(1 - self.eps) * w) * gy
        return gx, gq


def _class_last(x):
    """(N, C, d1, ...) -> (N d1 ..., C): the class axis last, one row per position."""
    if x.ndim == 2:
        return x
    return x.transpose(0, *range(2, x.ndim), 1).reshape(-1, x.shape[1])


def _target_array(target, logits):
    """The target as a NumPy/CuPy array (a Tensor's data), or a TypeError naming it."""
    t = target.data if isinstance(target, Tensor) else target
    if not backend.is_array(t):
        try:
            t = np.asarray(t)
        except ValueError as e:
            raise TypeError(f"{OP}: target must be an integer array of class indices or a "
                            f"float array of class probabilities, got {type(t).__name__}: "
                            f"{e}") from None
    if backend.device_of(t) != logits.device:
        raise ValueError(f"{OP}: logits are on {logits.device}, target on "
                         f"{backend.device_of(t)}")
    return t


def _weight_array(weight, logits):
    """``weight`` as an array of C per-class weights in the logits' dtype and device."""
    c = logits.shape[1]
    if isinstance(weight, Tensor) and weight.requires_grad:
        raise ValueError(f"{OP}: weight gets no gradient (as in PyTorch); pass "
                         f"weight.detach()")
    if not isinstance(weight, Tensor) and not backend.is_array(weight) and not (
            isinstance(weight, (list, tuple))):
        raise TypeError(f"{OP}: weight must be None or a Tensor of {c} per-class weights, got "
                        f"{weight!r} (label_smoothing and reduction are keyword arguments)")
    weight = as_tensor(weight, op=OP)
    check_float(OP, logits=logits, weight=weight)
    if weight.shape != (c,):
        raise ValueError(f"{OP}: weight must hold one weight per class, shape ({c},) for "
                         f"logits of shape {logits.shape}, got shape {weight.shape}")
    if weight.device != logits.device:
        raise ValueError(f"{OP}: logits are on {logits.device}, weight on {weight.device}")
    return weight.data


def _batch_of_one(target, logits):
    """The target of unbatched logits (C,) as a batch of one: () -> (1,), (C,) -> (1, C)."""
    if not isinstance(target, Tensor):
        target = target if backend.is_array(target) else np.asarray(target)
    probabilities = target.shape == logits.shape and target.dtype.kind == 'f'
    if target.shape != () and not probabilities:
        raise ValueError(f"{OP}: unbatched logits of shape {logits.shape} take a 0-d target "
                         f"(a class index) or class probabilities of shape {logits.shape}, "
                         f"got target shape {target.shape}")
    return target.reshape(1, *target.shape)


def softmax_cross_entropy(logits, target, weight=None, ignore_index=-100, reduction='mean',
                          label_smoothing=0.0):
    """Cross-entropy loss of ``logits`` (N, C) or (N, C, d1, d2, ...) against ``target``;
    PyTorch's ``torch.nn.functional.cross_entropy`` (its non-deprecated options, in order).
    Unbatched logits (C,) take a 0-d target (or (C,) probabilities), as a batch of one.

    ``target`` is either
      * class indices: an integer array or Tensor of shape (N,) or (N, d1, d2, ...), values
        in [0, C) or equal to ``ignore_index`` (default -100): those positions add no loss
        and are left out of the mean; or
      * class probabilities: a floating-point array or Tensor of the logits' shape and dtype
        (``ignore_index`` does not apply and must be negative, as in PyTorch; a Tensor that
        requires grad gets its gradient).
    ``weight``: None or C per-class weights (the logits' dtype; no gradient flows to it).
    ``reduction``: 'none' (a loss per position: (N,) or (N, d1, ...)), 'sum', or 'mean':
    with class indices the weighted mean sum_n loss_n / sum_n w[t_n] over the positions not
    ignored (nan when every target is ignored), with probabilities the sum over N d1 ....
    ``label_smoothing`` eps in [0, 1] mixes the target with the uniform distribution:
    (1 - eps) target + eps / C, the class weights applying to both parts.
    Floating-point logits only (docs/dtypes.md).
    """
    logits = as_tensor(logits, op=OP)
    check_float(OP, logits=logits)
    if logits.ndim == 1:  # unbatched (C,) with a 0-d target (or (C,) probabilities): N = 1
        loss = softmax_cross_entropy(logits.reshape(1, -1), _batch_of_one(target, logits), weight,
                                     ignore_index, reduction, label_smoothing)
        return loss.reshape(()) if reduction == 'none' else loss
    if logits.ndim < 2:
        raise ValueError(f"{OP}: logits must be (N, C) or unbatched (C,), got shape "
                         f"{logits.shape} (or (N, C, d1, ...) with a target (N, d1, ...))")
    c = logits.shape[1]
    t = _target_array(target, logits)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{OP}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    label_smoothing = check_number(OP, 'label_smoothing', label_smoothing, 0, 1)
    ignore_index = check_int(OP, 'ignore_index', ignore_index)
    w = None if weight is None else _weight_array(weight, logits)
    positions = logits.shape[:1] + logits.shape[2:]  # (N, d1, ...)
    x = _class_last(logits)
    if t.dtype.kind == 'f' and t.ndim == logits.ndim:  # class probabilities: a 2nd input
        q = target if isinstance(target, Tensor) else Tensor(t)
        check_float(OP, logits=logits, target=q)
        if q.shape != logits.shape:
            raise ValueError(f"{OP}: class-probability target must have the logits' shape "
                             f"{logits.shape}, got {q.shape}")
        if ignore_index >= 0:  # PyTorch's rule: a class to ignore makes no sense here
            raise ValueError(f"{OP}: ignore_index is not supported for class-probability "
                             f"targets; got ignore_index={ignore_index} (negative: unused)")
        inputs = (x, _class_last(q))
        t = None
    else:
        if t.dtype.kind not in 'iu':
            raise TypeError(f"{OP}: target must hold integer class indices (or floating-point "
                            f"class probabilities), got dtype {t.dtype}")
        if t.shape != positions:
            raise ValueError(f"{OP}: target shape {t.shape} must be {positions} for logits of "
                             f"shape {logits.shape}")
        t = t.reshape(-1)
        kept = t[t != ignore_index]
        if kept.size and (int(kept.min()) < 0 or int(kept.max()) >= c):
            raise ValueError(f"{OP}: target values must be in [0, {c}) or ignore_index "
                             f"{ignore_index}, for logits of shape {logits.shape}, got min "
                             f"{int(kept.min())}, max {int(kept.max())}")
        inputs = (x,)
    loss = SoftmaxCrossEntropy(t, w, ignore_index, label_smoothing, reduction)(*inputs)
    return loss.reshape(positions) if reduction == 'none' else loss


cross_entropy = softmax_cross_entropy


def mse_loss(input, target, reduction='mean'):
    """Mean squared error: mean((input - target)^2) (or 'sum' / 'none'). ``input`` must be
    floating-point; ``target`` is promoted with it as in arithmetic (docs/dtypes.md)."""
    input = as_tensor(input, op='mse_loss')
    check_float('mse_loss', input=input)
    target = as_tensor(target, like=input, op='mse_loss')
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} != target shape {target.shape}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    sq = (input - target) ** 2
    return sq.mean() if reduction == 'mean' else sq.sum() if reduction == 'sum' else sq
