"""Numerical gradient checks: compare backward with central differences in float64.

For an input x and a direction v in output space, backward gives the analytic
``v^T J`` (J = dy/dx); the numeric estimate of the same vector is, element by element,

    (v . f(x + eps e_j) - v . f(x - eps e_j)) / (2 eps)         (error O(eps^2)).

With a small output (at most ``full_jacobian_max`` elements) the directions v are the unit
vectors, so the whole Jacobian is compared; with a larger one, a few random Gaussian
directions are used (a wrong entry of J shows up in a random projection with probability 1).

Non-finite values fail the check, whatever the tolerances: a NaN or inf in the forward
output at the point checked, in the analytic gradient or in the numeric one. (A plain
``|a - n| > tol`` test would let NaN through, since every comparison with NaN is False.)
"""
import math

import numpy as np

from . import backend
from .tensor import Tensor, enable_grad, grad, no_grad
from .utils import check_int, check_number


class GradcheckError(ValueError):
    """Raised when an analytic gradient disagrees with its numerical estimate."""


def _outputs(result, where):
    outs = result if isinstance(result, (tuple, list)) else (result,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"{where}: fn must return a Tensor or a tuple of Tensors, "
                            f"got {type(o).__name__}")
    if not outs:
        raise ValueError(f"{where}: fn returned no outputs (an empty {type(result).__name__})")
    return list(outs)


def _arguments(where, fn, inputs, eps, atol, rtol):
    """``inputs`` as a tuple, after checking the arguments every check shares: a callable
    fn, a Tensor or a sequence of inputs, a finite non-zero eps (central differences
    divide by it) and tolerances >= 0 (a NaN tolerance would pass any gradient)."""
    if not callable(fn):
        raise TypeError(f"{where}: fn must be callable, got {type(fn).__name__}")
    if not isinstance(inputs, (Tensor, tuple, list)):
        raise TypeError(f"{where}: inputs must be a Tensor or a tuple/list of them, got "
                        f"{type(inputs).__name__}")
    eps = check_number(where, 'eps', eps)
    if eps == 0 or not math.isfinite(eps):
        raise ValueError(f"{where}: eps must be a finite non-zero number, got {eps}")
    check_number(where, 'atol', atol, 0)
    check_number(where, 'rtol', rtol, 0)
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _targets(inputs, where):
    targets = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not targets:
        raise ValueError(f"{where}: no input has requires_grad=True; nothing to check")
    for i in targets:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"{where}: input {i} is {inputs[i].dtype}; gradient checks need "
                            f"float64 inputs (finite differences in float32 are too noisy)")
    return targets


def _directions(outs, full_max, n_random, seed):
    """Lists (one per direction) of arrays shaped like each output."""
    sizes = [o.numel() for o in outs]
    xp = backend.get_array_module(outs[0].data)
    if sum(sizes) <= full_max:
        dirs = []
        for k in range(sum(sizes)):
            flat = np.zeros(sum(sizes))
            flat[k] = 1.0
            parts = np.split(flat, np.cumsum(sizes)[:-1])
            dirs.append([xp.asarray(p.reshape(o.shape)) for p, o in zip(parts, outs)])
        return dirs, 'output element'
    rng = np.random.default_rng(seed)
    return [[xp.asarray(rng.standard_normal(o.shape)) for o in outs]
            for _ in range(n_random)], 'random output direction'


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, full_jacobian_max=16,
              n_random=3, seed=0, raise_exception=True):
    """Check ``fn``'s backward against central differences for every input that requires grad.

    ``fn(*inputs)`` returns a Tensor (any shape) or a tuple of Tensors. Inputs that require
    grad must be float64. An element passes when both values are finite and ``|analytic -
    numeric| <= atol + rtol * |numeric|``; a forward output with a NaN or inf fails too. On
    failure raises ``GradcheckError`` naming the input (or output), the element and the
    values (or returns False with ``raise_exception=False``).
    """
    inputs = _arguments('gradcheck', fn, inputs, eps, atol, rtol)
    full_jacobian_max = check_int('gradcheck', 'full_jacobian_max', full_jacobian_max, 0)
    n_random = check_int('gradcheck', 'n_random', n_random, 1)  # (0 would check nothing)
    targets = _targets(inputs, 'gradcheck')
    for i in targets:  # perturbation below writes into a flat view of each input
        if not inputs[i].data.flags.c_contiguous:
            inputs[i].data = inputs[i].data.copy()

    with enable_grad():
        outs = _outputs(fn(*inputs), 'gradcheck')
    for k, o in enumerate(outs):
        values = backend.to_numpy(o.data)
        finite = np.isfinite(values)
        if not finite.all():
            j = _first(~finite)
            return _fail(f"gradcheck: output {k} (shape {o.shape}) is not finite at index {j}: "
                         f"{values[j]} (fn must be finite at the point checked)",
                         raise_exception)
    dirs, kind = _directions(outs, full_jacobian_max, n_random, seed)
    tracked = [k for k, o in enumerate(outs) if o.requires_grad]
    for d, v in enumerate(dirs):
        if tracked:
            analytic = grad([outs[k] for k in tracked], [inputs[i] for i in targets],
                            [Tensor(v[k]) for k in tracked], retain_graph=True, allow_unused=True)
        else:
            analytic = [None] * len(targets)
        for i, a in zip(targets, analytic):
            x = inputs[i]
            a = np.zeros(x.shape) if a is None else backend.to_numpy(a.data)
            n = _numeric(fn, inputs, x, v, eps)
            finite = np.isfinite(a) & np.isfinite(n)
            if not finite.all():  # before the tolerance test, which NaN would pass
                j = _first(~finite)
                return _fail(f"gradcheck: gradient for input {i} (shape {x.shape}) is not finite "
                             f"at index {j}, {kind} {d}: analytic {a[j]:.10g}, numeric "
                             f"{n[j]:.10g}", raise_exception)
            err = np.abs(a - n) / (atol + rtol * np.abs(n))
            if err.size and err.max() > 1:
                j = np.unravel_index(int(err.argmax()), err.shape)
                return _fail(f"gradcheck: wrong gradient for input {i} (shape {x.shape}) at "
                             f"index {tuple(int(t) for t in j)}, {kind} {d}: analytic "
                             f"{a[j]:.10g}, numeric {n[j]:.10g} (|difference| "
                             f"{abs(a[j] - n[j]):.3g} > atol + rtol*|numeric| = "
                             f"{atol + rtol * abs(n[j]):.3g})", raise_exception)
    return True


def _first(mask):
    """The index (a tuple of ints) of the first True element of ``mask``."""
    return tuple(int(t) for t in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _fail(message, raise_exception):
    if raise_exception:
        raise GradcheckError(message)
    return False


def _numeric(fn, inputs, x, v, eps):
    """Central-difference estimate of v^T dy/dx, one element of x at a time."""
    flat = x.data.reshape(-1)
    out = np.empty(flat.size)

    def f():
        with no_grad():
            outs = _outputs(fn(*inputs), 'gradcheck')
        with np.errstate(invalid='ignore', over='ignore'):  # inf * 0: a NaN, reported later
            return sum(float((o.data * vk).sum()) for o, vk in zip(outs, v))

    for j in range(flat.size):
        old = flat[j].item()
        flat[j] = old + eps
        plus = f()
        flat[j] = old - eps
        minus = f()
        flat[j] = old
        out[j] = (plus - minus) / (2 * eps)
    return out.reshape(x.shape)


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0,
                  **kwargs):
    """Check second derivatives: gradcheck of ``(inputs, v) -> v^T dfn/dinputs``.

    The first-order gradients are computed with ``create_graph=True`` and then checked
    like any other function, with respect to both the inputs and the direction ``v``
    (random float64 unless ``grad_outputs`` is given).
    """
    inputs = _arguments('gradgradcheck', fn, inputs, eps, atol, rtol)
    targets = _targets(inputs, 'gradgradcheck')
    with enable_grad():
        outs = _outputs(fn(*inputs), 'gradgradcheck')
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [Tensor(backend.get_array_module(o.data).asarray(
            rng.standard_normal(o.shape)), requires_grad=True) for o in outs]
    else:
        grad_outputs = list(grad_outputs) if isinstance(grad_outputs, (tuple, list)) \
            else [grad_outputs]
        shapes = [tuple(np.shape(g.data if isinstance(g, Tensor) else g)) for g in grad_outputs]
        if shapes != [o.shape for o in outs]:
            raise ValueError(f"gradgradcheck: grad_outputs have shapes {shapes}, fn's outputs "
                             f"{[o.shape for o in outs]} (one per output, of its shape)")
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        with enable_grad():  # also while gradcheck evaluates this under no_grad
            ys = _outputs(fn(*xs), 'gradgradcheck')
            gs = grad(ys, [xs[i] for i in targets], list(vs), create_graph=True,
                      allow_unused=True)
        return tuple(g if g is not None else Tensor(backend.get_array_module(xs[i].data)
                                                    .zeros(xs[i].shape))
                     for i, g in zip(targets, gs))

    return gradcheck(first_derivative, inputs + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, seed=seed, **kwargs)
