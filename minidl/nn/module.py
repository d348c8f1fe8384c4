"""Module, Parameter and Sequential: how layers hold their weights and compose.

A ``Module`` registers every ``Parameter`` and sub-``Module`` assigned to it as an attribute,
in assignment order, so ``model.parameters()`` finds all weights of a network and
``state_dict()`` names them by their attribute path (``features.0.weight``), as PyTorch does.
"""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import backend
from ..tensor import NUMBER_KINDS, Tensor
from ..utils import check_bool

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
            self._buffers[name] = _check_buffer(self, name, value)
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
        """A non-trainable array (NumPy or CuPy, or None) saved in ``state_dict`` (e.g.
        batch norm running stats)."""
        self._check_new_name('buffer', name)
        self._buffers[name] = _check_buffer(self, name, array)

    def register_parameter(self, name, param):
        """A Parameter (or None, a slot without one) under ``name``."""
        self._check_new_name('parameter', name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: {name!r} must be a "
                            f"Parameter or None, got {type(param).__name__} (wrap a Tensor "
                            f"or array in nn.Parameter)")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name, module):
        """A sub-module (or None) under ``name`` (as ``self.name = module``)."""
        self._check_new_name('module', name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} must be a Module or "
                            f"None, got {type(module).__name__}")
        if module is None:
            self._forget(name)
            self._modules[name] = None
        else:
            setattr(self, name, module)

    register_module = add_module

    def _check_new_name(self, kind, name):
        """PyTorch's rules (and exceptions) for a registered name: a str, not empty, no
        '.' (state_dict keys join names with dots), and not already an attribute other
        than one of this kind (which is replaced)."""
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: {kind} name must be a str, got "
                            f"{type(name).__name__} {name!r:.40}")
        if not name or '.' in name:
            raise KeyError(f"{type(self).__name__}: {kind} name must be non-empty and "
                           f"without '.', got {name!r}")
        own = {'parameter': self._parameters, 'buffer': self._buffers,
               'module': self._modules}[kind]
        if hasattr(self, name) and name not in own:
            raise KeyError(f"{type(self).__name__}: attribute {name!r} already exists "
                           f"(cannot register a {kind} under that name)")

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
        _check_callable(self, 'register_forward_hook', hook)
        key = object()
        self._forward_hooks[key] = hook
        return _Handle(self._forward_hooks, key)

    def register_forward_pre_hook(self, hook):
        """``hook(module, inputs)`` runs before every forward. Returns a handle."""
        _check_callable(self, 'register_forward_pre_hook', hook)
        key = object()
        self._forward_pre_hooks[key] = hook
        return _Handle(self._forward_pre_hooks, key)

    # -- traversal
    def named_modules(self, prefix='', memo=None):
        """(dotted name, module) for this module and every sub-module, each once: a module
        used at two places is listed under its first name (as in PyTorch), so that
        ``state_dict`` and ``load_state_dict`` agree on its keys."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

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
        _check_callable(self, 'apply', fn)
        for m in self.modules():
            fn(m)
        return self

    # -- modes, devices, dtypes
    def train(self, mode=True):
        check_bool(f"{type(self).__name__}.train: mode", mode)  # ('eval' would mean training)
        for m in self.modules():
            object.__setattr__(m, 'training', bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient, or (``set_to_none=False``) fill it with zeros."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (``requires_grad_(False)`` freezes the
        module: its parameters get no gradient, so optimizers skip them). Returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, device_or_dtype):
        """Move every parameter, gradient and buffer to a device ('cpu'/'cuda') or cast
        floating-point ones to a dtype (``model.to(numpy.float64)``), in place.
        ``model.to(None)`` changes nothing, as in PyTorch."""
        if device_or_dtype is None:
            return self
        if isinstance(device_or_dtype, str):
            device = backend.check_device(device_or_dtype)
            convert = lambda a: backend.to_device(a, device)  # noqa: E731
        else:
            try:
                dtype = np.dtype(device_or_dtype)
            except TypeError:
                raise TypeError(f"{type(self).__name__}.to: expected a device ('cpu', "
                                f"'cuda') or a dtype, got {device_or_dtype!r}") from None
            if dtype.kind != 'f':  # parameters require grad: only floats can
                raise TypeError(f"{type(self).__name__}.to: only floating-point dtypes, got "
                                f"{dtype}")
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
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict ({type(self).__name__}): expected a dict of "
                            f"arrays by name, got {type(state_dict).__name__}")
        own = self._state_slots()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        arrays = {}
        for key in own:
            if key in state_dict:
                array, problem = _as_state_array(key, state_dict[key])
                if problem is None and array.shape != own[key][2].shape:
                    problem = (f"{key}: checkpoint shape {array.shape} != model shape "
                               f"{own[key][2].shape}")
                if problem is None:
                    arrays[key] = array
                else:
                    problems.append(problem)
        if problems:
            raise ValueError(f"load_state_dict ({type(self).__name__}): " + '; '.join(problems))
        for key, (module, name, current) in own.items():
            if key in arrays:
                array = _copy_like(arrays[key], current)
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


def _as_state_array(key, value):
    """(array, None) for a state_dict value (an array, a Tensor, a list, another library's
    tensor that NumPy reads), or (None, what is wrong with it): read before anything is
    copied, so that a bad value leaves the module unchanged."""
    value = value.data if isinstance(value, Tensor) else value
    kind = type(value).__name__ if type(value).__module__ == 'builtins' else \
        f"{type(value).__module__}.{type(value).__qualname__}"
    if not backend.is_array(value):
        try:
            value = np.asarray(value)
        except Exception as e:  # e.g. torch's "Can't call numpy() on Tensor that requires grad"
            return None, f"{key}: cannot read a {kind} as an array ({e})"
    if value.dtype.kind not in NUMBER_KINDS:
        return None, f"{key}: expected numbers, got dtype {value.dtype} from {kind}"
    return value, None


def _copy_like(value, like):
    """A new array holding ``value`` with the dtype and on the device of ``like``."""
    return backend.to_device(value, backend.device_of(like)).astype(like.dtype, copy=True)


def _check_buffer(module, name, value):
    """A buffer is a NumPy or CuPy array, or None."""
    if value is not None and not backend.is_array(value):
        hint = " (a Tensor: pass its .data)" if isinstance(value, Tensor) else ""
        raise TypeError(f"{type(module).__name__}: buffer {name!r} must be a NumPy or CuPy "
                        f"array or None, got {type(value).__name__}{hint}")
    return value


def _check_callable(module, where, fn):
    if not callable(fn):
        raise TypeError(f"{type(module).__name__}.{where}: expected a callable, got "
                        f"{type(fn).__name__} {fn!r:.40}")


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
            self.add_module(name, m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        """The module at ``index`` or, for a slice, a Sequential of those modules under
        their names here (as PyTorch: ``model[2:]`` keeps '2', '3', ...)."""
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        try:
            return items[index][1]
        except IndexError:
            raise IndexError(f"Sequential: index {index} is out of range for "
                             f"{len(items)} modules") from None
        except TypeError:
            raise TypeError(f"Sequential: index must be an int or a slice, got "
                            f"{type(index).__name__} {index!r:.40}") from None
