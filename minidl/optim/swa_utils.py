r"""Weight averaging: ``AveragedModel`` for stochastic weight averaging and exponential moving
averages (names and semantics of ``torch.optim.swa_utils``), and ``LookaheadState``, the
lookahead of the airbench CIFAR-10 recipe (an EMA copied back into the model).

Both keep running averages A of a model's weights W_1, W_2, ... (one per update):

- equal average (SWA, Izmailov et al. 2018): A_n = (W_1 + ... + W_n) / n. Keeping only A_n
  and n, since n A_n = (n - 1) A_{n-1} + W_n,

      A_n = A_{n-1} + (W_n - A_{n-1}) / n.

- exponential moving average (EMA) with ``decay`` d: A_1 = W_1 and

      A_t = d A_{t-1} + (1 - d) W_t = lerp(A_{t-1}, W_t, 1 - d)
          = d^(t-1) W_1 + (1 - d) sum_{i=2..t} d^(t-i) W_i,

  a weighted mean whose weights fall by a factor d per update (about the last 1 / (1 - d)
  updates count).

The averaging functions work on arrays (``p.data`` and buffers). The ``*_avg_fn`` ones return
the new average, ``avg_fn(averaged, current, num_averaged)``; the ``*_multi_avg_fn`` ones
update lists of averages in place, ``multi_avg_fn(averaged_list, current_list,
num_averaged)``. ``num_averaged`` is the number of models averaged so far (a Python int).
"""
import copy

import numpy as np

from .. import backend
from ..nn.module import Module
from ..tensor import Tensor
from ..utils import check_bool, check_number
from .adam import _lerp_

__all__ = ['AveragedModel', 'LookaheadState', 'get_ema_avg_fn', 'get_ema_multi_avg_fn',
           'get_swa_avg_fn', 'get_swa_multi_avg_fn']


def _check_decay(op, decay):
    return check_number(op, 'decay', decay, 0, 1)


def get_ema_multi_avg_fn(decay=0.999):
    """EMA in place on lists of arrays: ``A <- lerp(A, W, 1 - decay)`` (torch's formula;
    integer arrays: ``A <- A * decay + W * (1 - decay)``, truncated)."""
    decay = _check_decay('get_ema_multi_avg_fn', decay)

    def ema_update(averaged, current, num_averaged):
        for a, w in zip(averaged, current):
            if a.dtype.kind == 'f':
                _lerp_(a, w, 1 - decay)
            else:
                a[...] = a * decay + w * (1 - decay)
    return ema_update


def get_ema_avg_fn(decay=0.999):
    """EMA of one array: returns ``decay * A + (1 - decay) * W``."""
    decay = _check_decay('get_ema_avg_fn', decay)

    def ema_update(averaged, current, num_averaged):
        return decay * averaged + (1 - decay) * current
    return ema_update


def get_swa_multi_avg_fn():
    """Equal average in place on lists of arrays: ``A <- lerp(A, W, 1 / (n + 1))`` for
    n models averaged so far (integer arrays: ``A + (W - A) / (n + 1)``, truncated)."""

    def swa_update(averaged, current, num_averaged):
        for a, w in zip(averaged, current):
            if a.dtype.kind == 'f':
                _lerp_(a, w, 1 / (num_averaged + 1))
            else:
                a[...] = a + (w - a) / (num_averaged + 1)
    return swa_update


def get_swa_avg_fn():
    """Equal average of one array: returns ``A + (W - A) / (n + 1)`` for n models averaged
    so far (the default of ``AveragedModel``, as PyTorch computes it on the CPU)."""

    def swa_update(averaged, current, num_averaged):
        return averaged + (current - averaged) / (num_averaged + 1)
    return swa_update


class AveragedModel(Module):
    """A copy of ``model`` whose weights are a running average of ``model``'s, as
    ``torch.optim.swa_utils.AveragedModel``.

    Memory: a deep copy of the model (parameters and buffers, without gradients) plus the
    buffer ``n_averaged``, the number of models averaged so far (an int64 0-d array, saved
    in ``state_dict``). Calling it runs the copy (``forward``).

    ``update_parameters(model)``: the first call copies ``model``'s parameters; each later
    call averages them in, with ``multi_avg_fn`` (in place, once per device and dtype),
    else ``avg_fn`` (per array), else the equal average (``get_swa_avg_fn``). With
    ``use_buffers=True`` the buffers (batch norm's running statistics) are averaged too;
    otherwise they are copied from ``model`` at each update. ``device`` moves the copy
    ('cpu' or 'cuda'). For an EMA of weights and batch-norm statistics::

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
        ...
        optimizer.step()
        ema.update_parameters(model)
    """

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel: model must be a minidl Module, got "
                            f"{type(model).__name__}")
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("AveragedModel: give avg_fn or multi_avg_fn, not both")
        for name, fn in (('avg_fn', avg_fn), ('multi_avg_fn', multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"AveragedModel: {name} must be a function or None, got {fn!r}")
        check_bool('AveragedModel: use_buffers', use_buffers)
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.grad = None  # as torch's Parameter.__deepcopy__: the copy has no gradients
        if device is not None:
            self.module.to(device)
        self.register_buffer('n_averaged', np.zeros((), np.int64))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _pairs(self, model, averaged, current, what):
        averaged, current = list(averaged), list(current)
        if len(averaged) != len(current) or any(
                a.shape != w.shape for a, w in zip(averaged, current)):
            raise ValueError(f"AveragedModel.update_parameters: the model's {what} (shapes "
                             f"{[tuple(w.shape) for w in current]}) do not match the "
                             f"averaged copy's ({[tuple(a.shape) for a in averaged]})")
        return [(a, backend.to_device(w, backend.device_of(a)))
                for a, w in zip(averaged, current)]

    def update_parameters(self, model):
        """Average ``model``'s current parameters (and buffers with ``use_buffers``) in."""
        if not isinstance(model, Module):
            raise TypeError(f"AveragedModel.update_parameters: model must be a minidl Module, "
                            f"got {type(model).__name__}")
        arrays = lambda m: [p.data for p in m.parameters()] + (  # noqa: E731
            list(m.buffers()) if self.use_buffers else [])
        what = 'parameters and buffers' if self.use_buffers else 'parameters'
        pairs = self._pairs(model, arrays(self.module), arrays(model), what)
        n = int(self.n_averaged)
        if n == 0:
            for a, w in pairs:
                a[...] = w
        elif self.avg_fn is not None:
            for a, w in pairs:
                result = self.avg_fn(a, w, n)
                a[...] = result.data if isinstance(result, Tensor) else result
        else:
            groups = {}  # (device, dtype) -> pairs, in order, as torch groups them
            for a, w in pairs:
                groups.setdefault((backend.device_of(a), a.dtype.str), []).append((a, w))
            average = get_swa_avg_fn()
            for group in groups.values():
                if self.multi_avg_fn is not None:
                    self.multi_avg_fn([a for a, _ in group], [w for _, w in group], n)
                else:
                    for a, w in group:
                        a[...] = average(a, w, n)
        if not self.use_buffers:  # keep the buffers in sync with the model
            for a, w in self._pairs(model, self.module.buffers(), model.buffers(), 'buffers'):
                a[...] = w
        self.n_averaged += 1


class LookaheadState:
    """An exponential moving average of a model's floating-point weights that is copied
    back into the model at every update: the "lookahead" of Keller Jordan's airbench
    CIFAR-10 recipe (its name, ``LookaheadState``), which PyTorch does not have.

    Memory: ``self.ema``, a copy of every floating-point entry of ``model.state_dict()``
    (parameters and buffers such as batch norm's running statistics) by name, on the
    model's device and in its dtype.

    ``update(model, decay)``, for each entry with current value W (the "fast" weights) and
    average A (the "slow" weights)::

        A <- decay * A + (1 - decay) * W     (= lerp(A, W, 1 - decay), torch's formula)
        W <- A                               (in place: the model continues from A)

    This is Lookahead (Zhang et al. 2019) with step size alpha = 1 - decay: the slow weights
    move a fraction alpha towards where the optimizer took the fast ones, and the fast ones
    restart from there. ``decay=1.0`` leaves A as it is and resets the model to it (the
    recipe's last call); ``decay=0`` sets A to W and leaves the model alone. The model's
    arrays are written in place, so optimizers keep their state for the same parameters.
    """

    def __init__(self, model):
        if not isinstance(model, Module):
            raise TypeError(f"LookaheadState: model must be a minidl Module, got "
                            f"{type(model).__name__}")
        self.ema = {name: array.copy() for name, array in model.state_dict().items()
                    if array.dtype.kind == 'f'}

    def update(self, model, decay):
        """Average ``model``'s floating-point weights into ``ema`` with ``decay``, then copy
        the average back into the model."""
        decay = check_number('LookaheadState.update', 'decay', decay, 0, 1)
        if not isinstance(model, Module):
            raise TypeError(f"LookaheadState.update: model must be a minidl Module, got "
                            f"{type(model).__name__}")
        state = {name: array for name, array in model.state_dict().items()
                 if array.dtype.kind == 'f'}
        if list(state) != list(self.ema) or any(
                state[k].shape != a.shape for k, a in self.ema.items()):
            raise ValueError(f"LookaheadState.update: the model's floating-point entries "
                             f"{[(k, tuple(w.shape)) for k, w in state.items()]} are not "
                             f"those it was made from "
                             f"{[(k, tuple(a.shape)) for k, a in self.ema.items()]}")
        for name, average in self.ema.items():
            current = state[name]
            _lerp_(average, backend.to_device(current, backend.device_of(average)), 1 - decay)
            current[...] = backend.to_device(average, backend.device_of(current))
