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
        array = np.asarray(data, dtype=default if dtype is None else dtype)
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
            array = array.astype(default if dtype is None else dtype, copy=False)
    if array.dtype.kind not in NUMBER_KINDS:
        raise TypeError(f"{op}: a tensor holds numbers (bool, int, float or complex), got "
                        f"dtype {array.dtype} from {type(data).__name__}")
    return array


def _check_dtype(op, dtype):
    """``dtype`` as a NumPy dtype, or a TypeError naming ``op``."""
    try:
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
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(_as_array(value, self.dtype))
        if value is not None and value.shape != self.shape:
            raise ValueError(f"Tensor.grad: assigned gradient has shape {value.shape}, "
                             f"the tensor has shape {self.shape}")
        self._grad = value

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
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
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

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
        outputs = [Tensor(y) for y in ((outputs,) if single else outputs)]
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
    dtype = _check_dtype('astype', dtype)
    return x if x.dtype == dtype else Cast(dtype)(x)


class ToDevice(Function):
    """y = x copied to ``device``.   dL/dx = gy copied back to x's device."""

    def __init__(self, device):
        self.device = backend.check_device(device)

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return ToDevice(self.inputs[0].device)(gy)


def to(x, device_or_dtype):
    """``x.to('cuda')``, ``x.to('cpu')`` or ``x.to(numpy.float64)`` (differentiable)."""
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
    for hook in t._hooks:
        result = hook(g)
        if result is not None:
            g = as_tensor(result)
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
            if _GradMode.enabled:
                raise TypeError(f"{fn.name}.backward returned an array, not a Tensor, so its "
                                f"gradient cannot be differentiated again (create_graph=True)")
            g = Tensor(g)
        if g.shape != x.shape:
            raise ValueError(f"{fn.name}.backward: gradient for input {i} has shape {g.shape}, "
                             f"the input has shape {x.shape}")
        if g.dtype != x.dtype:
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
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
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
    return method
