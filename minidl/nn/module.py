"""Module, Parameter and Sequential: how layers hold their weights and compose.

A ``Module`` registers every ``Parameter`` and sub-``Module`` assigned to it as an attribute,
in assignment order, so ``model.parameters()`` finds all weights of a network and
``state_dict()`` names them by their attribute path (``features.0.weight``), as PyTorch does.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..tensor import Tensor

IncompatibleKeys = namedtuple('IncompatibleKeys', ['missing_keys', 'unexpected_keys'])


class Parameter(Tensor):
    """A Tensor that is a weight of a Module: requires grad by default and is registered
    by ``Module.__setattr__``."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return 'Parameter containing:\n' + super().__repr__()


class _Handle:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    """Base class of layers and models: subclass, assign layers/Parameters in ``__init__``,
    write ``forward``; call the module to run it (with its forward hooks)."""

    def __init__(self):
        object.__setattr__(self, '_parameters', OrderedDict())
        object.__setattr__(self, '_buffers', OrderedDict())
        object.__setattr__(self, '_modules', OrderedDict())
        object.__setattr__(self, '_forward_hooks', OrderedDict())
        object.__setattr__(self, '_forward_pre_hooks', OrderedDict())
        object.__setattr__(self, 'training', True)

    # -- registration
    def __setattr__(self, name, value):
        if '_parameters' not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes")
        if isinstance(value, (Parameter, Module)):
            self._forget(name)
            registry = self._parameters if isinstance(value, Parameter) else self._modules
            registry[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        elif name in self._parameters or name in self._modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name}: cannot replace a parameter or "
                                f"module by a {type(value).__name__} (use None or .data)")
            (self._parameters if name in self._parameters else self._modules)[name] = None
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for registry in (self._parameters, self._buffers, self._modules, self.__dict__):
            registry.pop(name, None)

    def __getattr__(self, name):  # only called when normal lookup fails
        for registry in ('_parameters', '_buffers', '_modules'):
            d = self.__dict__.get(registry, {})
            if name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{name}'")

    def __delattr__(self, name):
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """A non-trainable array saved in ``state_dict`` (e.g. batch norm running stats)."""
        self._buffers[name] = array

    def register_parameter(self, name, param):
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    # -- running
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            hook(self, args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_hook(self, hook):
        """``hook(module, inputs, output)`` runs after every forward; returning a value
        replaces the output. Returns a handle with ``remove()``."""
        key = object()
        self._forward_hooks[key] = hook
        return _Handle(self._forward_hooks, key)

    def register_forward_pre_hook(self, hook):
        """``hook(module, inputs)`` runs before every forward. Returns a handle."""
        key = object()
        self._forward_pre_hooks[key] = hook
        return _Handle(self._forward_pre_hooks, key)

    # -- traversal
    def named_modules(self, prefix=''):
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix=''):
        """(dotted name, Parameter) in registration order, each Parameter once."""
        seen = set()
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for mod_name, m in self.named_modules():
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def apply(self, fn):
        for m in self.modules():
            fn(m)
        return self

    # -- modes, devices, dtypes
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, 'training', bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (``requires_grad_(False)`` freezes the
        module: its parameters get no gradient, so optimizers skip them). Returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, device_or_dtype):
        """Move every parameter, gradient and buffer to a device ('cpu'/'cuda') or cast
        floating-point ones to a dtype (``model.to(numpy.float64)``), in place."""
        if isinstance(device_or_dtype, str):
            device = backend.check_device(device_or_dtype)
            convert = lambda a: backend.to_device(a, device)  # noqa: E731
        else:
            dtype = np.dtype(device_or_dtype)
            convert = lambda a: a.astype(dtype) if a.dtype.kind == 'f' else a  # noqa: E731
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = convert(p.data)
                    if p.grad is not None:
                        p.grad = Tensor(convert(p.grad.data))
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = convert(b)
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def cuda(self):
        return self.to('cuda')

    def cpu(self):
        return self.to('cpu')

    # -- state
    def state_dict(self):
        """OrderedDict of parameter and buffer arrays by dotted name (shared, not copied)."""
        state = OrderedDict((n, p.data) for n, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into this module's parameters and buffers.

        Everything is checked before anything is copied: with ``strict``, missing or
        unexpected keys are an error; a shape mismatch always is. On error the module is
        unchanged. Arrays are cast to each parameter's dtype and moved to its device.
        """
        own = self._state_slots()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        for key in own:
            if key in state_dict:
                value = state_dict[key]
                value = value.data if isinstance(value, Tensor) else value
                shape = tuple(np.shape(value)) if not backend.is_array(value) else value.shape
                if shape != own[key][2].shape:
                    problems.append(f"{key}: checkpoint shape {shape} != model shape "
                                    f"{own[key][2].shape}")
        if problems:
            raise ValueError(f"load_state_dict ({type(self).__name__}): " + '; '.join(problems))
        for key, (module, name, current) in own.items():
            if key in state_dict:
                array = _copy_like(state_dict[key], current)
                if name in module._parameters:
                    module._parameters[name].data = array
                else:
                    module._buffers[name] = array
        return IncompatibleKeys(missing, unexpected)

    def _state_slots(self):
        slots = OrderedDict()
        for mod_name, m in self.named_modules():
            for name, p in list(m._parameters.items()) + list(m._buffers.items()):
                if p is not None:
                    key = f"{mod_name}.{name}" if mod_name else name
                    slots.setdefault(key, (m, name, p.data if isinstance(p, Tensor) else p))
        return slots

    # -- printing
    def extra_repr(self):
        return ''

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace('\n', '\n  ') for name, m in
                 self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ('\n  ' + '\n  '.join(lines) + '\n)' if lines else ')')


def _copy_like(value, like):
    """A new array holding ``value`` with the dtype and on the device of ``like``."""
    value = value.data if isinstance(value, Tensor) else value
    value = value if backend.is_array(value) else np.asarray(value)
    return backend.to_device(value, backend.device_of(like)).astype(like.dtype, copy=True)


class Sequential(Module):
    """Modules applied in order: ``Sequential(Conv2d(...), ReLU(), ...)`` (named '0', '1',
    ...) or ``Sequential(OrderedDict(name=module, ...))``."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (OrderedDict, dict)):
            modules = modules[0].items()
        else:
            modules = ((str(i), m) for i, m in enumerate(modules))
        for name, m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.values())
        return Sequential(*items[index]) if isinstance(index, slice) else items[index]
