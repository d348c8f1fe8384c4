"""Losses: fused softmax cross-entropy (with label smoothing) and mean squared error."""
import numpy as np

from .. import backend
from ..tensor import Function, Tensor, as_tensor
from ..utils import check_float, check_number
from .activation import softmax

REDUCTIONS = ('mean', 'sum', 'none')


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of softmax(x) against class targets t, in one numerically stable step.

    With p = softmax(x_n) and the (smoothed) target distribution
    q_n = (1 - eps) onehot(t_n) + eps / C,

        loss_n = -sum_c q_nc log p_nc = logsumexp(x_n) - sum_c q_nc x_nc

    (log p is computed as x - max - log sum exp(x - max), finite for any finite logits).
    Gradient: dloss_n/dx_n = p_n - q_n, times gy (and 1/N for reduction 'mean').
    Stores nothing beyond its input: backward recomputes softmax(x) as a Tensor op, so the
    gradient is itself differentiable.
    """

    def __init__(self, target, label_smoothing, reduction):
        self.target, self.eps, self.reduction = target, label_smoothing, reduction

    def forward(self, x):
        xp = backend.get_array_module(x)
        n, c = x.shape
        shifted = x - x.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_p[xp.arange(n), self.target]
        if self.eps:
            loss = (1 - self.eps) * loss - (self.eps / c) * log_p.sum(axis=1)
        if self.reduction == 'mean':
            return loss.mean()
        return loss.sum() if self.reduction == 'sum' else loss

    def backward(self, gy):
        x = self.inputs[0]
        n, c = x.shape
        xp = backend.get_array_module(x.data)
        q = xp.full((n, c), self.eps / c, dtype=x.dtype)
        q[xp.arange(n), self.target] += 1 - self.eps
        if self.reduction == 'none':
            gy = gy.reshape(n, 1)
        elif self.reduction == 'mean':
            gy = gy * (1.0 / n)
        return (softmax(x, axis=1) - Tensor(q)) * gy


def softmax_cross_entropy(logits, target, label_smoothing=0.0, reduction='mean'):
    """Cross-entropy loss of ``logits`` (N, C) against integer class ``target`` (N,).

    ``target`` is an integer array or integer Tensor with values in [0, C).
    ``reduction`` is 'mean' (over N), 'sum' or 'none' (a loss per sample), as in
    ``torch.nn.functional.cross_entropy``. Floating-point logits only (docs/dtypes.md).
    """
    logits = as_tensor(logits, op='softmax_cross_entropy')
    check_float('softmax_cross_entropy', logits=logits)
    t = target.data if isinstance(target, Tensor) else target
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, C), got shape {logits.shape}")
    n, c = logits.shape
    if not backend.is_array(t):
        try:
            t = np.asarray(t)
        except ValueError as e:
            raise TypeError(f"softmax_cross_entropy: target must be an integer array, got "
                            f"{type(t).__name__}: {e}") from None
    if t.dtype.kind not in 'iu':
        raise TypeError(f"softmax_cross_entropy: target must hold integer class indices, got "
                        f"dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"softmax_cross_entropy: target shape {t.shape} must be ({n},) for "
                         f"logits of shape {logits.shape}")
    if backend.device_of(t) != logits.device:
        raise ValueError(f"softmax_cross_entropy: logits are on {logits.device}, target on "
                         f"{backend.device_of(t)}")
    if n and (int(t.min()) < 0 or int(t.max()) >= c):
        raise ValueError(f"softmax_cross_entropy: target values must be in [0, {c}) for "
                         f"logits of shape {logits.shape}, got min {int(t.min())}, "
                         f"max {int(t.max())}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"softmax_cross_entropy: reduction must be one of {REDUCTIONS}, "
                         f"got {reduction!r}")
    label_smoothing = check_number('softmax_cross_entropy', 'label_smoothing',
                                   label_smoothing, 0, 1)
    return SoftmaxCrossEntropy(t, label_smoothing, reduction)(logits)


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
