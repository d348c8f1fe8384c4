"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from ..backend import get_array_module
from ..kernels.optim import blockwise
from ..utils import ArgumentTypeError, is_number
from .optimizer import Optimizer


class SGD(Optimizer):
    r"""SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g``, at step t = 1, 2, ...::

        g   <- -g                                                    (if maximize)
        g   <- g + weight_decay * p                                  (if weight_decay != 0)
        b_1  = g,   b_t = momentum * b_{t-1} + (1 - dampening) * g   (if momentum != 0)
        g   <- g + momentum * b_t   (nesterov)   or   b_t
        p   <- p - lr * g

    The first buffer is the gradient itself (no dampening), as in PyTorch; it is kept in
    ``state[p]['momentum_buffer']``. ``lr`` defaults to 1e-3 and ``maximize`` (ascend the
    objective) is keyword-only, as in PyTorch 2.
    """
    _state_keys = ('momentum_buffer',)
    _later_options = {'maximize': False}

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check_group(self, group):
        self._check_nonnegative(group, 'lr', 'momentum', 'weight_decay')
        self._check_flags(group, 'nesterov', 'maximize')
        if not is_number(group['dampening']):  # any number, as in PyTorch
            raise ArgumentTypeError(f"SGD: invalid dampening {group['dampening']!r} (must be "
                                    f"a number)")
        if group['nesterov'] and (group['momentum'] <= 0 or group['dampening'] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum > 0 and zero "
                             f"dampening, got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def _update(self, p, grad, group, state):
        momentum, first = float(group['momentum']), 'momentum_buffer' not in state
        if momentum != 0 and first:  # filled with the first gradient by sgd_update
            state['momentum_buffer'] = get_array_module(p.data).empty_like(p.data)
        buffers = [state['momentum_buffer']] if momentum != 0 else []
        blockwise(sgd_update, p.data, get_array_module(grad).ascontiguousarray(grad), *buffers,
                  lr=float(group['lr']), momentum=momentum,
                  dampening=float(group['dampening']),
                  weight_decay=float(group['weight_decay']), nesterov=group['nesterov'],
                  first=first, maximize=group['maximize'])


def sgd_update(p, grad, buf=None, *, lr, momentum, dampening, weight_decay, nesterov, first,
               maximize=False):
    """One SGD step on arrays, in place on p and buf (the formulas of ``SGD``)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * p
    if momentum != 0:
        if first:
            buf[...] = grad
        else:
            buf *= momentum
            buf += grad if dampening == 0 else (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    p += -lr * grad
