"""Tensor, Function and reverse-mode automatic differentiation (define-by-run).

The whole idea in one screen:

* A ``Tensor`` wraps an array (NumPy or CuPy). When it is computed by a ``Function`` from
  inputs that require gradients, it remembers that function as ``grad_fn``.
* A ``Function`` computes ``forward`` on raw arrays and keeps its input Tensors in
  ``self.inputs`` (or, when its backward reads none of their values, only a record of
  where their gradients go: ``reads_inputs``); its ``backward`` maps the gradients of
  the outputs (Tensors) to the gradients of the inputs (Tensors) by the chain rule:
  ``dL/dx = (dy/dx)^T dL/dy``.
* ``y.backward()`` orders the functions that produced ``y`` topologically, then walks them
  from ``y`` back to the leaves, summing the gradient that reaches each tensor from all its
  uses, and finally adds it into ``leaf.grad``.

Because backward works on Tensors, running it with grad mode on (``create_graph=True``)
records a graph of the gradient computation itself, which can be differentiated again.
"""
import contextlib
import numbers
import weakref

import numpy as np

from . import backend
from .utils import check_axis, check_bool


# ----------------------------------------------------------------------------- grad mode
class _GradMode:
    enabled = True
    on_record = None  # optional callback(fn) for every recorded Function (used by summary)


def is_grad_enabled():
    return _GradMode.enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Context manager that turns graph recording on or off inside its block."""
    previous, _GradMode.enabled = _GradMode.enabled, bool(mode)
    try:
        yield
    finally:
        _GradMode.enabled = previous


def no_grad():
    """``with minidl.no_grad():`` runs ops without recording a graph (inference, updates)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


# ----------------------------------------------------------------------------- arrays
NUMBER_KINDS = 'biufc'  # bool, unsigned and signed integers, floats, complex: what a Tensor holds


def _as_array(data, dtype=None, op='tensor'):
    """An array for ``data``: arrays keep their dtype; Python numbers and lists become float32
    (complex64 if they hold complex numbers).

    Anything that is not numbers (None, a string, a ragged or mixed list, an array of
    strings or objects) is a TypeError naming ``op``: NumPy would turn None into NaN and
    '1.5' into 1.5.
    """
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_array(data):
        array = data if dtype is None else data.astype(dtype, copy=False)
    elif isinstance(data, np.generic):
        array = np.asarray(data, dtype=dtype)
    elif isinstance(data, numbers.Number):
        default = np.complex64 if isinstance(data, complex) else np.float32
        array = _numbers_as(data, default if dtype is None else dtype, op)
    elif data is None or isinstance(data, (str, bytes, dict, set)):
        raise TypeError(f"{op}: expected a Tensor, an array or a number, got "
                        f"{type(data).__name__} {data!r:.60}")
    else:  # a (nested) list or tuple: first as NumPy reads it, to see what it holds
        try:
            array = np.asarray(data)
        except ValueError as e:
            raise TypeError(f"{op}: cannot make a tensor from {type(data).__name__} "
                            f"{data!r:.60}: {e}") from None
        if array.dtype.kind in NUMBER_KINDS:
            default = np.complex64 if array.dtype.kind == 'c' else np.float32
            array = array.astype(default, copy=False) if dtype is None else \
                _numbers_as(data, dtype, op)
    if array.dtype.kind not in NUMBER_KINDS:
        raise TypeError(f"{op}: a tensor holds numbers (bool, int, float or complex), got "
                        f"dtype {array.dtype} from {type(data).__name__}")
    return array


def _numbers_as(data, dtype, op):
    """Python numbers (one, or nested lists of them) as an array of ``dtype``, with the
    checks PyTorch makes: a complex number does not become a real one, and an integer
    dtype takes only the values it holds (NaN, inf, 300 for uint8 are errors, not wrapped
    around). NumPy makes these checks for Python numbers; the error names ``op``."""
    try:
        return np.asarray(data, dtype=dtype)
    except TypeError as e:
        raise TypeError(f"{op}: cannot make a {np.dtype(dtype)} tensor from "
                        f"{data!r:.60}: {e}") from None
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{op}: cannot make a {np.dtype(dtype)} tensor from "
                         f"{data!r:.60}: {e}") from None


def _check_dtype(op, dtype):
    """``dtype`` as a NumPy dtype, or a TypeError naming ``op`` (None is not a dtype here,
    although NumPy reads it as float64)."""
    try:
        if dtype is None:
            raise TypeError
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: {dtype!r} is not a dtype (try numpy.float32)") from None


def _is_float(dtype):
    return np.dtype(dtype).kind == 'f'


def _describe(t):
    return f"{tuple(t.shape)} {t.dtype} on {t.device}"


# ----------------------------------------------------------------------------- Tensor
class Tensor:
    """An n-dimensional array that can record how it was computed.

    ``Tensor(data, requires_grad=False)``: ``data`` is a NumPy or CuPy array (its dtype is
    kept), a Python number or a nested list (float32). Only floating-point tensors can
    require gradients. Its operators and methods (``x + y``, ``x @ w``, ``x[i]``,
    ``x.sum()``, ``x.reshape()``) are the differentiable ops of ``minidl.functional``,
    attached by ``install_operators`` at the end of this file.
    """
    __array_ufunc__ = None  # ``ndarray + Tensor`` defers to Tensor.__radd__
    __hash__ = object.__hash__  # comparisons return Tensors; identity stays the hash

    def __init__(self, data, requires_grad=False, name=None):
        self.data = _as_array(data)
        self.grad = None
        self.grad_fn = None  # the Function that produced this tensor, None for a leaf
        self.name = name
        self._output_index = 0
        self._hooks = []
        self._retain_grad = False
        self.requires_grad = requires_grad

    # -- attributes that read like NumPy / PyTorch
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        value = value.data if isinstance(value, Tensor) else value
        if not backend.is_array(value):
            raise TypeError(f"Tensor.data must be a NumPy or CuPy array, got {type(value).__name__}")
        self._data = value

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        """A Tensor of this tensor's shape and dtype (as PyTorch), or an array or number,
        which is converted to this tensor's dtype."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(_as_array(value, self.dtype))
        if value is not None and value.shape != self.shape:
            raise ValueError(f"Tensor.grad: assigned gradient has shape {value.shape}, "
                             f"the tensor has shape {self.shape}")
        if value is not None and value.dtype != self.dtype:
            raise TypeError(f"Tensor.grad: assigned gradient has dtype {value.dtype}, the "
                            f"tensor has dtype {self.dtype} (shape {self.shape})")
        self._grad = value

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        check_bool('Tensor.requires_grad', flag)  # ('no' would be True)
        if flag and not _is_float(self.dtype):
            raise TypeError(f"Tensor.requires_grad: only floating-point tensors can require "
                            f"gradients, got dtype {self.dtype} with shape {self.shape}")
        if not flag and self.grad_fn is not None:
            raise ValueError("Tensor.requires_grad: cannot turn off on a non-leaf tensor; "
                             "use .detach()")
        self._requires_grad = bool(flag)

    shape = property(lambda self: tuple(self.data.shape))
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.grad_fn is None)
    T = property(lambda self: self.transpose())

    def size(self, dim=None):
        """The shape (PyTorch's ``x.size()``), or one dimension of it."""
        if dim is None:
            return self.shape
        if not self.ndim:
            raise IndexError(f"Tensor.size: dim {dim!r} given, but a 0-d tensor has no "
                             f"dimensions")
        return self.shape[check_axis('Tensor.size', dim, self.shape, 'dim')]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if not self.ndim:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        """The sub-tensors along dimension 0 (without this, Python would iterate a 0-d
        tensor by indexing it until IndexError: an empty list)."""
        if not self.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __index__(self):
        """A one-element integer tensor as a Python int: ``x[n:]``, ``range(n)``."""
        if self.data.size != 1 or self.dtype.kind not in 'iu':
            raise TypeError(f"only an integer tensor of one element converts to an index, "
                            f"got {self.dtype} with shape {self.shape}")
        return int(self.data.item())

    def __repr__(self):
        body = str(backend.to_numpy(self.data)).replace('\n', '\n       ')
        extra = f", grad_fn=<{type(self.grad_fn).__name__}>" if self.grad_fn else (
            ", requires_grad=True" if self.requires_grad else "")
        dev = ", device='cuda'" if self.device == 'cuda' else ""
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor with shape {self.shape} is ambiguous")
        return bool(self.data)

    # -- conversions
    def numpy(self):
        """The data as a NumPy array (copied from the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"Tensor.item: only a one-element tensor converts to a Python "
                             f"number, got shape {self.shape}")
        return self.data.item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor(self.data)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain_grad = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor
        replaces the gradient. Returns a handle whose ``remove()`` unregisters the hook."""
        if not self.requires_grad:
            raise ValueError("register_hook: the tensor does not require grad")
        if not callable(hook):
            raise TypeError(f"register_hook: the hook must be callable(grad), got "
                            f"{type(hook).__name__} {hook!r:.40}")
        if self.grad_fn is not None:  # the graph keeps a hooked tensor alive until backward
            self.grad_fn.__dict__.setdefault('hooked_outputs', []).append(self)
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    def backward(self, grad=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is dL/d(self); it may be omitted only for a one-element tensor (then 1).
        The graph is freed afterwards unless ``retain_graph`` (or ``create_graph``) is set.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: the tensor does not require grad and has no grad_fn "
                               "(did you compute it under no_grad, or forget requires_grad=True?)")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward: a gradient can be created implicitly only for a "
                                 f"one-element output, got shape {self.shape}; pass "
                                 f"grad= with that shape")
            grad = Tensor(backend.get_array_module(self.data).ones_like(self.data))
        run_backward([self], [grad], retain_graph or create_graph, create_graph)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Make a leaf Tensor (a copy of ``data``), optionally cast and moved to ``device``."""
    array = _as_array(data, None if dtype is None else _check_dtype('tensor', dtype))
    array = array.copy() if array is data or (
        isinstance(data, Tensor) and array is data.data) else array
    if device is not None:
        array = backend.to_device(array, device)
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(obj, like=None, op='tensor'):
    """``obj`` as a Tensor. A Python number (or NumPy scalar) beside a tensor ``like`` is
    put on its device, in a dtype chosen as PyTorch does (docs/dtypes.md):

    * ``like``'s dtype when the number is of the same kind or a lower one (bool < integer
      < float < complex): ``2.0 * x`` stays float16 for a float16 x, ``x + 1`` stays
      int32 for an int32 x;
    * else the default dtype of the number's kind: float32 for a float beside an integer
      tensor (``x / 2.0``), int64 for an int beside a bool tensor, complex64 (complex128
      beside float64) for a complex number.

    A list beside ``like`` takes like's dtype if that is floating-point, else float32.
    What cannot be a tensor (None, a string) is a TypeError naming ``op``.
    """
    if isinstance(obj, Tensor):
        return obj
    if like is not None and not backend.is_array(obj):
        xp = backend.get_array_module(like.data)
        return Tensor(xp.asarray(_as_array(obj, _dtype_beside(obj, like.dtype), op)))
    return Tensor(obj if backend.is_array(obj) else _as_array(obj, op=op))


_KIND_RANK = {'b': 0, 'u': 1, 'i': 1, 'f': 2, 'c': 3}  # bool < integer < float < complex


def _number_rank(obj):
    """The kind of a Python or NumPy number as a _KIND_RANK, None for anything else."""
    if type(obj) is float:  # the usual case (x * 0.5), without the slower ABC checks
        return 2
    if isinstance(obj, (bool, np.bool_)):
        return 0
    if isinstance(obj, numbers.Integral):
        return 1
    if isinstance(obj, numbers.Real):
        return 2
    return 3 if isinstance(obj, numbers.Complex) else None


def result_type(*tensors):
    """The dtype of an elementwise op on ``tensors``: PyTorch's promotion rule.

    * the highest kind wins (bool < integer < float < complex): int64 + float32 is float32
      (NumPy would say float64);
    * within that kind, tensors with dimensions beat 0-d ones: float32 (3,) + float64 ()
      is float32;
    * of those, the smallest dtype that holds them all: float16 + float32 is float32.

    Python numbers are made 0-d tensors first by ``as_tensor``, with the dtype its rule gives.
    """
    top = max(_KIND_RANK[t.dtype.kind] for t in tensors)
    highest = [t for t in tensors if _KIND_RANK[t.dtype.kind] == top]
    return np.result_type(*(t.dtype for t in ([t for t in highest if t.ndim] or highest)))


def _dtype_beside(obj, dtype):
    """The dtype a number ``obj`` takes beside a tensor of ``dtype`` (see ``as_tensor``)."""
    rank = _number_rank(obj)
    if rank is None:  # a list
        return dtype if _is_float(dtype) else None
    if rank <= _KIND_RANK[dtype.kind]:
        return dtype
    if rank == 3:
        return np.result_type(dtype, np.complex64) if dtype.kind == 'f' else np.complex64
    return (np.bool_, np.int64, np.float32)[rank]


# ----------------------------------------------------------------------------- Function
class Function:
    """An operation with a forward on arrays and a backward on Tensors.

    Subclass and define ``forward(self, *arrays) -> array or tuple of arrays`` and
    ``backward(self, *grad_outputs) -> Tensor or tuple of Tensors`` (one per input, None
    for an input that gets no gradient). Inside backward, ``self.inputs`` are the input
    Tensors and ``self.needs_input_grad[i]`` says whether input ``i`` needs a gradient.
    Apply as ``MyOp(options)(*tensors)``.

    ``reads_inputs = False`` (a class attribute) declares that backward reads only the
    inputs' shapes, dtypes and devices, never their values: the graph then keeps, for an
    input made by another Function, an ``InputRecord`` in its place, and the array is freed
    as soon as nothing else holds it (max-pooling's input, the convolution's output, is
    the largest such array of a CNN; PyTorch likewise saves only what backward reads).
    """
    reads_inputs = True
    reads_outputs = False  # True: backward reads self.outputs[i]() (kept by the users)

    def __call__(self, *inputs):
        inputs = [as_tensor(x) for x in inputs]
        self._check_devices(inputs)
        outputs = self.forward(*[x.data for x in inputs])
        single = not isinstance(outputs, tuple)
        outputs = [self._output(y) for y in ((outputs,) if single else outputs)]
        if _GradMode.enabled and any(x.requires_grad for x in inputs):
            self.inputs = inputs if self.reads_inputs else [_record(x) for x in inputs]
            self.needs_input_grad = tuple(x.requires_grad for x in inputs)
            self.outputs = [weakref.ref(y) for y in outputs]
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            for i, y in enumerate(outputs):
                y.grad_fn, y._output_index, y._requires_grad = self, i, True
            if _GradMode.on_record is not None:
                _GradMode.on_record(self)
        return outputs[0] if single else tuple(outputs)

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__}.backward is not defined")

    @property
    def name(self):
        return type(self).__name__

    def _output(self, y):
        """A Tensor of an array forward returned (a list or a Python float would become a
        float32 tensor whatever the inputs' dtype)."""
        if not (backend.is_array(y) or isinstance(y, np.generic)):
            raise TypeError(f"{self.name}.forward returned {type(y).__name__}, expected an "
                            f"array (NumPy or CuPy) or a tuple of arrays")
        return Tensor(y)

    def _check_devices(self, inputs):
        devices = {x.device for x in inputs}
        if len(devices) > 1:
            described = ', '.join(_describe(x) for x in inputs)
            raise ValueError(f"{self.name}: all inputs must be on one device, got {described}")


class InputRecord:
    """What the graph keeps of a Function's input whose values backward does not read:
    where its gradient goes (the Function that made it and which output it was), and the
    shape, dtype and device the gradient must have. No array."""
    __slots__ = ('grad_fn', '_output_index', 'requires_grad', 'shape', 'dtype', 'device')

    def __init__(self, x):
        self.grad_fn, self._output_index, self.requires_grad = \
            x.grad_fn, x._output_index, x.requires_grad
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device


def _record(x):
    """An InputRecord of x; x itself for a leaf (its .grad is written at the end) and for
    the output of a Function whose backward reads its own output (``reads_outputs``: it
    holds that Tensor only weakly, so a user must keep it alive)."""
    return x if x.grad_fn is None or x.grad_fn.reads_outputs else InputRecord(x)


# ----------------------------------------------------------------------------- casts, moves
class Cast(Function):
    """y = x converted to ``dtype``.   dL/dx = gy converted back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return Cast(self.inputs[0].dtype)(gy)


def astype(x, dtype):
    """x converted to ``dtype``; differentiable to a floating-point dtype. A cast to an
    integer, bool or complex dtype gives a tensor that does not require grad (as in
    PyTorch: rounding has no useful derivative), cut from the graph."""
    dtype = _check_dtype('astype', dtype)
    if x.dtype == dtype:
        return x
    if dtype.kind != 'f' and x.requires_grad:
        return Tensor(x.data.astype(dtype))
    return Cast(dtype)(x)


class ToDevice(Function):
    """y = x copied to ``device``.   dL/dx = gy copied back to x's device."""

    def __init__(self, device):
        self.device = backend.check_device(device)

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return ToDevice(self.inputs[0].device)(gy)


def to(x, device_or_dtype):
    """``x.to('cuda')``, ``x.to('cpu')`` or ``x.to(numpy.float64)`` (differentiable);
    ``x.to(None)`` is x, as in PyTorch."""
    if device_or_dtype is None:
        return x
    if isinstance(device_or_dtype, str):
        device = backend.check_device(device_or_dtype)
        return x if x.device == device else ToDevice(device)(x)
    return astype(x, device_or_dtype)




# ----------------------------------------------------------------------------- backward
def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """The backward pass from ``roots`` (seeded with ``root_grads``): the chain rule, applied
    to every Function once, outputs before inputs.

    Without ``capture``: adds the gradient of every leaf that requires grad into ``leaf.grad``.
    With ``capture`` (a list of tensors): returns their gradients and leaves ``.grad`` alone.
    """
    grads = {}  # _key(tensor) -> (tensor, dL/dtensor summed over all its uses so far)
    for r, g in zip(roots, root_grads):
        _accumulate(grads, r, _seed(r, g))
    captured = {id(t): None for t in capture} if capture is not None else None
    with set_grad_enabled(create_graph):
        for fn in _topological_order(roots):
            outputs = [ref() for ref in fn.outputs]  # alive while fn.backward reads them
            gys = [_output_grad(fn, i, y, grads, captured, create_graph)
                   for i, y in enumerate(outputs)]
            gxs = _normalise_input_grads(fn, fn.backward(*gys))
            for x, gx in zip(fn.inputs, gxs):
                if gx is not None:
                    _accumulate(grads, x, gx)
            if not retain_graph:
                _free(fn)
        leaves = [(t, _apply_hooks(t, g)) for t, g in grads.values()
                  if t.requires_grad and t.grad_fn is None]  # what remains are the leaves
        if captured is None:
            return _write_leaf_grads(leaves, root_grads, create_graph)
    captured.update((id(t), g) for t, g in leaves if id(t) in captured)
    return [captured[id(t)] for t in capture]


def _key(t):
    """Where the gradient of t is collected: a computed tensor (or its InputRecord) by the
    Function and output that made it, a leaf by itself."""
    return id(t) if t.grad_fn is None else (id(t.grad_fn), t._output_index)


def _accumulate(grads, t, g):
    """Add g to the gradient of t collected so far (a tensor used twice gets the sum)."""
    key = _key(t)
    if key in grads:
        g = grads[key][1] + g
    grads[key] = (t, g)


def _seed(root, g):
    """dL/droot as given, checked, in root's dtype (as PyTorch casts it)."""
    if not isinstance(g, (Tensor, numbers.Number, list, tuple)) and not backend.is_array(g):
        raise TypeError(f"backward: grad must be a Tensor or an array of shape {root.shape}, "
                        f"got {type(g).__name__}")
    g = as_tensor(g, like=root)
    if g.shape != root.shape:
        raise ValueError(f"backward: grad has shape {g.shape}, the output has shape {root.shape}")
    if (g.dtype.kind == 'c') != (root.dtype.kind == 'c'):  # a cast would drop the imaginary part
        raise TypeError(f"backward: grad is {g.dtype} but the output is {root.dtype}; a complex "
                        f"gradient needs a complex output and a real one a real output")
    return g if g.dtype == root.dtype else astype(g, root.dtype)


def _topological_order(roots):
    """Functions reachable from ``roots``, each after every function that uses its outputs.

    Iterative depth-first search (a deep graph cannot hit Python's recursion limit).
    """
    post, visited = [], set()
    stack = [(r.grad_fn, False) for r in roots if r.grad_fn is not None]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            post.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if getattr(fn, 'inputs', None) is None:
            raise RuntimeError(f"backward through {fn.name} a second time: its graph was freed "
                               f"by the first backward; pass retain_graph=True to keep it")
        stack.append((fn, True))
        stack.extend((x.grad_fn, False) for x in fn.inputs
                     if x.grad_fn is not None and id(x.grad_fn) not in visited)
    return post[::-1]


def _output_grad(fn, i, y, grads, captured, create_graph):
    """dL/dy for output i of fn, taken out of ``grads``: hooks applied, kept where
    ``retain_grad`` or ``capture`` asks; zeros for an output nobody used. y is None when
    the output Tensor itself is gone (its users kept InputRecords, and it had no hooks)."""
    g = grads.pop((id(fn), i), (None, None))[1]
    if g is None:
        shape, dtype = fn.output_meta[i]
        return Tensor(backend.array_module_for(fn.inputs[0].device).zeros(shape, dtype))
    if y is None:
        return g
    g = _apply_hooks(y, g)
    if y._retain_grad:
        y.grad = g if create_graph else g.detach()
    if captured is not None and id(y) in captured:
        captured[id(y)] = g
    return g


def _apply_hooks(t, g):
    """g after t's hooks; a hook's result must keep g's shape and dtype (as in PyTorch)."""
    for hook in t._hooks:
        result = hook(g)
        if result is None:
            continue
        name = getattr(hook, '__qualname__', type(hook).__name__)
        if not isinstance(result, Tensor) and not backend.is_array(result):
            raise TypeError(f"register_hook: hook {name} returned {type(result).__name__}, "
                            f"expected None or a gradient Tensor of shape {g.shape} {g.dtype}")
        result = as_tensor(result)
        if result.shape != g.shape or result.dtype != g.dtype:
            raise ValueError(f"register_hook: hook {name} changed the gradient from "
                             f"{g.shape} {g.dtype} to {result.shape} {result.dtype}")
        g = result
    return g


def _normalise_input_grads(fn, grads):
    """Check what ``fn.backward`` returned: one gradient per input, matching shapes/dtypes."""
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(fn.inputs):
        raise ValueError(f"{fn.name}.backward returned {len(grads)} gradients for "
                         f"{len(fn.inputs)} inputs")
    out = []
    for i, (x, g) in enumerate(zip(fn.inputs, grads)):
        if g is None or not x.requires_grad:
            out.append(None)
            continue
        if not isinstance(g, Tensor):
            if not (backend.is_array(g) or isinstance(g, np.generic)):
                raise TypeError(f"{fn.name}.backward returned {type(g).__name__} for input "
                                f"{i}, expected a Tensor (or None)")
            if _GradMode.enabled:
                raise TypeError(f"{fn.name}.backward returned an array, not a Tensor, so its "
                                f"gradient cannot be differentiated again (create_graph=True)")
            g = Tensor(g)
        if g.shape != x.shape:
            raise ValueError(f"{fn.name}.backward: gradient for input {i} has shape {g.shape}, "
                             f"the input has shape {x.shape}")
        if g.dtype != x.dtype:
            if g.dtype.kind == 'c' and x.dtype.kind != 'c':  # (as PyTorch: not cast to real)
                raise TypeError(f"{fn.name}.backward: gradient for input {i} is {g.dtype}, the "
                                f"input is {x.dtype}; a real input needs a real gradient")
            g = g.astype(x.dtype)
        out.append(g)
    return out


def _free(fn):
    """Drop what fn kept for backward; a second backward through it raises a clear error."""
    fn.inputs = None
    fn.__dict__ = {k: v for k, v in fn.__dict__.items()
                   if k in ('outputs', 'output_meta', 'inputs')}


def _block(array):
    """The array that owns the memory of ``array`` (itself, or the base of a view)."""
    return array if array.base is None else array.base


def _write_leaf_grads(leaves, root_grads, create_graph):
    """leaf.grad += g for each (leaf, g). Without create_graph the gradients are detached,
    and a leaf's gradient never shares memory with the caller's seed or another leaf's."""
    given = {id(_block(g.data)) for g in root_grads if isinstance(g, Tensor)}
    for t, g in leaves:
        if not create_graph:
            g = g.detach()
            if id(_block(g.data)) in given:
                g = Tensor(g.data.copy())
            given.add(id(_block(g.data)))
        t.grad = g if t.grad is None else t.grad + g


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` untouched).

    As ``torch.autograd.grad``: ``grad_outputs`` default to ones for one-element outputs.
    """
    single_in = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single_in else list(inputs)
    for where, tensors in (('outputs', outputs), ('inputs', inputs)):
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"grad: {where} must be Tensors, got {type(t).__name__} at "
                                f"position {i}")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):  # (zip would drop the extra ones silently)
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; "
                         f"give one per output (None for a one-element output)")
    seeds = []
    for y, g in zip(outputs, grad_outputs):
        if g is None:
            if y.data.size != 1:
                raise ValueError(f"grad: grad_outputs needed for non-scalar output {y.shape}")
            xp = backend.get_array_module(y.data)
            g = Tensor(xp.ones(y.shape, y.dtype))
        seeds.append(g)
    for y in outputs:
        if not y.requires_grad:
            raise RuntimeError("grad: an output does not require grad")
    retain = create_graph if retain_graph is None else retain_graph
    result = run_backward(outputs, seeds, retain, create_graph, capture=inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} ({inputs[i].shape}) was not used to compute "
                               f"the outputs; pass allow_unused=True")
    return result[0] if single_in else tuple(result)


# ----------------------------------------------------------------------------- operators
def install_operators(F):
    """Give Tensor its operators and methods from the ops module ``F`` (minidl.functional):
    ``x + y`` is ``F.add(x, y)``, ``x @ w`` is ``F.matmul(x, w)``, ``x[i]`` is
    ``F.getitem(x, i)``, ``x.sum()`` is ``F.sum(x)``, and so on. Comparisons give plain
    (non-differentiable) boolean Tensors. Called once, at the end of
    minidl/functional/__init__.py, when every op exists."""
    T = Tensor
    T.__add__ = T.__radd__ = F.add
    T.__sub__, T.__rsub__ = F.sub, lambda self, other: F.sub(other, self)
    T.__mul__ = T.__rmul__ = F.mul
    T.__truediv__, T.__rtruediv__ = F.div, lambda self, other: F.div(other, self)
    T.__pow__, T.__rpow__ = F.pow, lambda self, other: F.pow(other, self)
    T.__matmul__, T.__rmatmul__ = F.matmul, lambda self, other: F.matmul(other, self)
    T.__neg__, T.__pos__, T.__abs__ = F.neg, (lambda self: self), F.absolute
    T.__getitem__ = F.getitem
    T.__iadd__, T.__isub__ = _in_place(F.add, '+='), _in_place(F.sub, '-=')
    T.__imul__, T.__itruediv__ = _in_place(F.mul, '*='), _in_place(F.div, '/=')
    for op in ('__eq__', '__ne__', '__lt__', '__le__', '__gt__', '__ge__'):
        setattr(T, op, _comparison(op))
    T.sum, T.mean, T.max, T.argmax = F.sum, F.mean, F.max, F.argmax
    T.reshape, T.transpose, T.flatten = F.reshape, F.transpose, F.flatten
    T.contiguous, T.is_contiguous = F.contiguous, F.is_contiguous
    T.exp, T.log, T.sqrt, T.abs = F.exp, F.log, F.sqrt, F.absolute
    T.astype, T.to = astype, to
    T.float = lambda self: astype(self, np.float32)
    T.double = lambda self: astype(self, np.float64)
    T.cpu = lambda self: to(self, 'cpu')
    T.cuda = lambda self: to(self, 'cuda')


def _comparison(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        try:
            return Tensor(getattr(self.data, op)(other))
        except TypeError as e:  # e.g. a tensor > a string
            raise TypeError(f"{op.strip('_')}: cannot compare a {self.dtype} tensor with "
                            f"{type(other).__name__} {other!r:.40}: {e}") from None
        except ValueError as e:  # e.g. shapes that do not broadcast
            raise ValueError(f"{op.strip('_')}: cannot compare a tensor of shape {self.shape} "
                             f"with {type(other).__name__} {getattr(other, 'shape', '')}: "
                             f"{e}") from None
    return method


def _in_place(op, symbol):
    """``x += y`` (and -=, *=, /=). minidl has no in-place ops in the graph, so on a tensor
    that is recorded or may be, it is ``x = x + y``: a new tensor bound to the name x. A
    leaf that requires grad is the exception, as in PyTorch: while grad mode is on this is
    an error (the update would be lost from the graph, and x would stop being a leaf);
    under ``no_grad`` (a hand-written SGD step, ``w -= lr * w.grad``) its values are
    updated in place and it stays the same leaf."""
    def method(self, other):
        if not (self.requires_grad and self.grad_fn is None):
            return op(self, other)
        if _GradMode.enabled:
            raise RuntimeError(f"x {symbol} y: x is a leaf tensor that requires grad "
                               f"({_describe(self)}); change it in place under "
                               f"minidl.no_grad(), or write x = x {symbol[0]} y for a new "
                               f"tensor")
        result = op(self, other)
        if result.shape != self.shape:
            raise ValueError(f"x {symbol} y: the result has shape {result.shape}, x has shape "
                             f"{self.shape} (an in-place update keeps x's shape)")
        if result.dtype.kind == 'c':
            raise TypeError(f"x {symbol} y: the result is {result.dtype}, which x "
                            f"({self.dtype}) cannot hold")
        self.data[...] = result.data
        return self
    return method
