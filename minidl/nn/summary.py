"""``minidl.summary(model, input_shape)``: the table a student wants before training.

One forward pass on a random input records, per layer: output shape, parameter count,
multiply-accumulates (MACs) and the bytes of activations the layer's operations keep for
backward. The last column is *measured* from the graph, not estimated: it sums the arrays
each recorded Function holds (its non-parameter inputs and whatever it saved, e.g. a
max-pool's argmax or a dropout mask), counting each block of memory once.
"""
import numbers

import numpy as np

from .. import backend, random
from ..tensor import Tensor, _GradMode, enable_grad
from .layers import Conv2d, Linear
from .module import Module
from ..utils import ArgumentTypeError


def _macs(module, output_shape):
    """Multiply-accumulates: one per weight use, i.e. output elements x fan-in."""
    if isinstance(module, Conv2d):
        kh, kw = module.kernel_size
        return int(np.prod(output_shape)) * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, Linear):
        return int(np.prod(output_shape)) * module.in_features
    return 0


def _held_arrays(fn):
    """The memory blocks (bases of views) a recorded Function keeps alive."""
    arrays = [x.data for x in fn.inputs if isinstance(x, Tensor)] + \
        [v for v in vars(fn).values() if backend.is_array(v)]
    return [a if a.base is None else a.base for a in arrays]


def _format_bytes(n):
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return f"{n:.0f} {unit}" if unit == 'B' else f"{n:.1f} {unit}"
        n /= 1024


def summary(model, input_shape, dtype=np.float32, device='cpu', print_fn=print):
    """Print (and return as a list of dicts) one row per layer, then totals.

    ``input_shape`` is the whole input shape including the batch, e.g. (1, 3, 224, 224).
    The model's mode, buffers (batch-norm statistics) and the random state are restored.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a Module, got {type(model).__name__}")
    shape = (input_shape,) if isinstance(input_shape, numbers.Integral) else input_shape
    if not isinstance(shape, (tuple, list)) or any(
            not isinstance(n, numbers.Integral) or isinstance(n, bool) for n in shape):
        raise ArgumentTypeError(f"summary: input_shape must be a tuple of ints (the whole "
                                f"input shape, batch included), got {input_shape!r}")
    if any(n < 0 for n in shape):
        raise ValueError(f"summary: input_shape must not be negative, got {input_shape!r}")
    names = {id(m): n or '(model)' for n, m in model.named_modules()}
    # parameters (and views of them, like W.T) are weights, not activations
    seen = {id(p.data if p.data.base is None else p.data.base) for p in model.parameters()}
    rows, stack, handles = [], [], []

    def pre(module, inputs):
        stack.append({'module': module, 'functions': []})

    def post(module, inputs, output):
        frame = stack.pop()
        if not list(module.children()):
            rows.append(_row(names[id(module)], type(module).__name__, module,
                             _shape_of(output), frame['functions'], seen))
        elif frame['functions']:  # ops a container's forward runs itself (e.g. flatten)
            last = frame['functions'][-1][1]
            rows.append(_row(names[id(module)], 'own ops', module, last.output_meta[0][0],
                             frame['functions'], seen))

    for m in model.modules():
        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    buffers = {k: v.copy() for k, v in model.named_buffers()}
    rng_state, training = random.get_rng_state(), model.training
    x = Tensor(backend.array_module_for(device).asarray(
        np.random.default_rng(0).standard_normal(tuple(shape)).astype(dtype)))
    counter = iter(range(1 << 62))
    _GradMode.on_record = lambda fn: stack[-1]['functions'].append((next(counter), fn)) \
        if stack else None
    try:
        with enable_grad():
            model.train()(x)
    finally:
        _GradMode.on_record = None
        for h in handles:
            h.remove()
        model.train(training)
        model.load_state_dict({**model.state_dict(), **buffers})
        random.set_rng_state(rng_state)
    rows.sort(key=lambda r: r['order'])
    _print_table(rows, model, print_fn)
    return rows


def _shape_of(output):
    """A Tensor's shape; for a layer that returns several (a tuple or list), their shapes."""
    if isinstance(output, (tuple, list)):
        return tuple(_shape_of(o) for o in output)
    return tuple(getattr(output, 'shape', ()))


def _row(name, kind, module, output_shape, functions, seen):
    kept = 0
    for _, fn in functions:
        for a in _held_arrays(fn):
            if id(a) not in seen:
                seen.add(id(a))
                kept += a.nbytes
    own = [p for p in module._parameters.values() if p is not None]
    return {'name': name, 'type': kind,
            'order': min((k for k, _ in functions), default=float('inf')),
            'output_shape': tuple(output_shape), 'params': sum(p.numel() for p in own),
            'macs': _macs(module, output_shape), 'kept_bytes': kept}


def _print_table(rows, model, print_fn):
    print_fn(f"{'layer':36s} {'output shape':>20s} {'params':>12s} {'MACs':>15s} "
             f"{'kept for backward':>18s}")
    for r in rows:
        print_fn(f"{r['name'] + ' (' + r['type'] + ')':36.36s} {str(r['output_shape']):>20s} "
                 f"{r['params']:12,d} {r['macs']:15,d} {_format_bytes(r['kept_bytes']):>18s}")
    params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.data.nbytes for p in model.parameters())
    print_fn(f"total: {params:,d} parameters ({_format_bytes(param_bytes)}), "
             f"{sum(r['macs'] for r in rows):,d} MACs, "
             f"{_format_bytes(sum(r['kept_bytes'] for r in rows))} of activations kept for "
             f"backward")
