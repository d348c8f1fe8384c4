"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW`` (same arithmetic)."""
from ..backend import get_array_module
from ..kernels.optim import blockwise
from ..utils import ArgumentTypeError, is_number
from .optimizer import Optimizer


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with optional L2 weight decay.

    For each parameter ``p`` with gradient ``g``, at step t = 1, 2, ... (m_0 = v_0 = 0)::

        g   <- -g                                         (if maximize)
        g   <- g + weight_decay * p                       (if weight_decay != 0)
        m_t  = beta1 * m_{t-1} + (1 - beta1) * g
        v_t  = beta2 * v_{t-1} + (1 - beta2) * g^2
        v_t <- max(v_t, the v used at t - 1)              (if amsgrad: Reddi et al., 2018)
        p   <- p - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    Evaluated in PyTorch's order: ``m`` as ``lerp(m, g, 1 - beta1)``, then
    ``step_size = lr / (1 - beta1^t)``, ``denom = sqrt(v) / sqrt(1 - beta2^t) + eps`` and
    ``p += (-step_size * m) / denom``. ``state[p]`` holds ``step``, ``exp_avg`` (m) and
    ``exp_avg_sq`` (v), and with amsgrad ``max_exp_avg_sq`` (the running maximum of v,
    which the step divides by). ``amsgrad`` and the keyword-only ``maximize`` (ascend the
    objective) are PyTorch's options of the same names.
    """
    _state_keys = ('step', 'exp_avg', 'exp_avg_sq')
    _optional_state = ('max_exp_avg_sq',)
    _later_options = {'amsgrad': False, 'maximize': False}
    _scalar_state = ('step',)
    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _check_group(self, group):
        self._check_nonnegative(group, 'lr', 'eps', 'weight_decay')
        self._check_flags(group, 'amsgrad', 'maximize')
        betas = group['betas']
        if not isinstance(betas, (tuple, list)) or len(betas) != 2 or \
                not all(is_number(beta) for beta in betas):
            raise ArgumentTypeError(f"{self._name}: invalid betas {betas!r} (must be a pair of "
                                    f"numbers in [0, 1), e.g. (0.9, 0.999))")
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"{self._name}: invalid betas {betas!r} (two numbers in [0, 1))")

    def _update(self, p, grad, group, state):
        lr, (beta1, beta2) = float(group['lr']), (float(beta) for beta in group['betas'])
        xp = get_array_module(p.data)
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        if group['amsgrad'] and 'max_exp_avg_sq' not in state:
            state['max_exp_avg_sq'] = xp.zeros_like(p.data)
        state['step'] = step = state['step'] + 1
        amsgrad = [state['max_exp_avg_sq']] if group['amsgrad'] else []
        blockwise(adam_update, p.data, get_array_module(grad).ascontiguousarray(grad),
                  state['exp_avg'], state['exp_avg_sq'], *amsgrad, maximize=group['maximize'],
                  lr=lr, beta1=beta1, beta2=beta2, eps=float(group['eps']),
                  weight_decay=float(group['weight_decay']),
                  decoupled=self._decoupled_weight_decay,
                  step_size=lr / (1 - beta1 ** step),
                  sqrt_bias_correction2=(1 - beta2 ** step) ** 0.5)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    As Adam without the L2 term in ``g``; instead, before the moments are updated::

        p   <- p * (1 - lr * weight_decay)
    """
    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)


def _lerp_(start, end, weight):
    """start <- start + weight * (end - start) in place, computed as torch.lerp does: from
    ``end`` as ``end - (end - start) * (1 - weight)`` when |weight| >= 0.5."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def adam_update(p, grad, m, v, v_max=None, *, lr, beta1, beta2, eps, weight_decay, decoupled,
                step_size, sqrt_bias_correction2, maximize=False):
    """One Adam / AdamW step on arrays, in place on p, m, v and v_max (amsgrad's running
    maximum of v, if given) (the formulas of ``Adam``), with ``step_size = lr / (1 - beta1^t)``
    and ``sqrt_bias_correction2 = sqrt(1 - beta2^t)``."""
    xp = get_array_module(v)
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * p
    _lerp_(m, grad, 1 - beta1)
    v *= beta2
    v += (1 - beta2) * grad * grad
    if v_max is not None:
        xp.maximum(v_max, v, out=v_max)
    denom = xp.sqrt(v if v_max is None else v_max) / sqrt_bias_correction2
    denom += eps
    p += -step_size * m / denom
