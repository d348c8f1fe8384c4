"""Optimizer: parameter groups, ``zero_grad``, ``step``, and state that can be saved and resumed.

An optimizer updates every parameter ``p`` that has a gradient, in place, from ``p.grad``.
Its per-parameter memory (step counts, momentum buffers, moment estimates) lives in
``self.state[p]``. ``state_dict()`` has PyTorch's layout, with parameters replaced by their
position in ``param_groups`` (counted across groups) so it refers to no objects::

    {'state': {0: {'step': 3, 'exp_avg': array, 'exp_avg_sq': array}, 1: {...}},
     'param_groups': [{'lr': 0.001, 'betas': [0.9, 0.999], ..., 'params': [0, 1]}]}
"""
import numpy as np

from .. import backend
from ..tensor import Tensor, enable_grad
from ..utils import ArgumentTypeError, check_bool, is_number

class _Required:
    def __repr__(self):
        return '<required parameter>'


required = _Required()  # default of a hyper-parameter that each group must set (SGD's lr)


class Optimizer:
    """Base class. ``params``: an iterable of Tensors, or of dicts (parameter groups) each with
    ``'params'`` and any hyper-parameters that override ``defaults`` for that group.

    Subclasses implement ``_update(p, grad, group, state)`` (arrays, in place on ``p.data``)
    and may check a group's hyper-parameters in ``_check_group``.
    """
    _state_keys = ()     # what a stepped parameter's state holds (it may also be empty)
    _optional_state = ()  # what it may hold besides, by an option (Adam's amsgrad)
    # options added after minidl first saved optimizers, with the value that means what
    # minidl did before them: a state dict without them gets it (as PyTorch's __setstate__)
    _later_options = {}
    _scalar_state = ()   # the entries of it that are numbers; the others are arrays like p

    def __init__(self, params, defaults):
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{self._name}: params must be an iterable of Tensors or of dicts, "
                            f"got a single {type(params).__name__}")
        if not hasattr(params, '__iter__'):
            raise TypeError(f"{self._name}: params must be an iterable of Tensors or of dicts "
                            f"(model.parameters()), got {type(params).__name__}")
        self.defaults = dict(defaults)
        self.state = {}  # Tensor -> dict (Tensors hash by identity)
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{'params': groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    def add_param_group(self, group):
        """Add a dict ``{'params': [...], hyper-parameter: value, ...}``; missing
        hyper-parameters are taken from ``defaults``."""
        if not isinstance(group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict, "
                            f"got {type(group).__name__}")
        if 'params' not in group:
            raise ValueError(f"{self._name}: a parameter group needs a 'params' entry")
        params = group['params']
        params = [params] if isinstance(params, Tensor) else list(params)
        if not params:
            raise ValueError(f"{self._name}: got an empty parameter list")
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{self._name} can only optimize Tensors, got "
                                f"{type(p).__name__}")
            if p.dtype.kind != 'f':
                raise TypeError(f"{self._name} can only optimize floating-point Tensors, got "
                                f"dtype {p.dtype} with shape {p.shape}")
            if not p.is_leaf:
                raise ValueError(f"{self._name} can't optimize a non-leaf Tensor")
        seen = {id(q) for g in self.param_groups for q in g['params']}
        if len({id(p) for p in params}) != len(params) or seen & {id(p) for p in params}:
            raise ValueError(f"{self._name}: some parameters appear more than once "
                             f"(in one group or in several groups)")
        group = {k: v for k, v in group.items() if k != 'params'}
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"{self._name}: parameter group didn't specify a value of "
                                 f"required optimization parameter {name}")
            group.setdefault(name, default)
        self._check_group(group)
        group['params'] = params
        self.param_groups.append(group)

    def _check_group(self, group):
        """Raise ValueError for invalid hyper-parameters in ``group``."""

    def _check_flags(self, group, *names):
        for name in names:
            check_bool(f"{self._name}: {name}", group[name])

    def _check_nonnegative(self, group, *names):
        for name in names:
            value = group[name]
            if not is_number(value):
                raise ArgumentTypeError(f"{self._name}: invalid {name} {value!r} (must be a "
                                        f"number >= 0, got {type(value).__name__})")
            if not value >= 0:
                raise ValueError(f"{self._name}: invalid {name} {value!r} (must be >= 0)")

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``p.grad = None``), or fill it with zeros."""
        for group in self.param_groups:
            for p in group['params']:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient. ``closure``, if given, re-evaluates
        the model (zero_grad, forward, backward) and returns the loss, which step returns."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is not None:
                    self._update(p, p.grad.data, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    # -- checkpoints
    def state_dict(self):
        """A snapshot (arrays are copies) made of dicts, lists, numbers, bools and arrays."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: _plain(v) for k, v in group.items() if k != 'params'}
            packed['params'] = [index.setdefault(id(p), len(index)) for p in group['params']]
            groups.append(packed)
        state = {index[id(p)]: {k: v.copy() if backend.is_array(v) else v for k, v in s.items()}
                 for p, s in self.state.items() if s and id(p) in index}
        return {'state': dict(sorted(state.items())), 'param_groups': groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state from ``state_dict()`` output (possibly saved
        and loaded). Everything is checked first: on a mismatch ValueError is raised and
        nothing changes. State arrays are copied to each parameter's device and dtype."""
        where = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {'state', 'param_groups'}:
            raise ValueError(f"{where}: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = list(state_dict['param_groups'])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved_groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        by_index = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict):
                raise ValueError(f"{where}: parameter group {i} is not a dict")
            indices = [int(k) for k in _plain(saved.get('params', []))]
            if len(indices) != len(group['params']):
                raise ValueError(f"{where}: parameter group {i} has {len(indices)} parameters "
                                 f"in the state dict, {len(group['params'])} here")
            by_index.update(zip(indices, group['params']))
            new = {k: _plain(v) for k, v in saved.items() if k != 'params'}
            for name, before in self._later_options.items():  # saved before they existed
                new.setdefault(name, before)
            missing = [k for k in self.defaults if k not in new]
            if missing:
                raise ValueError(f"{where}: parameter group {i} lacks {missing}")
            try:
                self._check_group(new)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: parameter group {i}: {err}") from None
            new['params'] = group['params']
            new_groups.append(new)
        new_state = {}
        for key, entries in state_dict['state'].items():
            if int(key) not in by_index:
                raise ValueError(f"{where}: state for parameter {key}, which is in no group")
            p = by_index[int(key)]
            new_state[p] = self._load_param_state(entries, p, f"{where}: parameter {key}")
        self.state = {p: {k: backend.to_device(v, p.device).astype(p.dtype, copy=True)
                          if backend.is_array(v) else v for k, v in s.items()}
                      for p, s in new_state.items()}
        for group, new in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new)

    def _load_param_state(self, entries, p, where):
        """The checked entries of one parameter's state (arrays not yet moved)."""
        if not isinstance(entries, dict):
            raise ValueError(f"{where}: state must be a dict, got {type(entries).__name__}")
        needed, allowed = set(self._state_keys), set(self._state_keys + self._optional_state)
        if entries and not needed <= set(entries) <= allowed:
            optional = f" (and optionally {sorted(self._optional_state)})" \
                if self._optional_state else ''
            raise ValueError(f"{where}: state has entries {sorted(entries)}, expected "
                             f"{sorted(self._state_keys)}{optional}")
        out = {}
        for name, value in entries.items():
            value = value.data if isinstance(value, Tensor) else value
            if name in self._scalar_state:
                value = _plain(value)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{where}: state {name!r} must be a number, got {value!r}")
            elif not backend.is_array(value) or tuple(value.shape) != p.shape:
                shape = tuple(value.shape) if backend.is_array(value) else type(value).__name__
                raise ValueError(f"{where}: state {name!r} is {shape}, the parameter has "
                                 f"shape {p.shape}")
            out[name] = value
        return out

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != 'params']
        return '\n'.join(lines) + '\n)'


def _plain(value):
    """``value`` with tuples as lists and NumPy scalars / arrays as Python numbers / lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if backend.is_array(value):
        return backend.to_numpy(value).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
