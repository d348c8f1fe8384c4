"""PyTorch's own test samples, run through minidl.

PyTorch tests each of its operators on the inputs of its OpInfo database
(``torch.testing._internal.common_methods_invocations.op_db``): odd and empty shapes, 0-D
tensors, broadcasting, NaN and inf, non-contiguous views, every keyword. ``OPS`` below
says how each of those PyTorch ops is called in minidl. The contract, for every sample:

- minidl's output equals PyTorch's, and so does the gradient of every input for a random
  output gradient (float64: 1e-9 of the largest value; float32: 2e-5); or
- minidl refuses the sample with one clear error that names the op (ValueError, TypeError
  or NotImplementedError), and the refusal is one of those listed in ``REFUSED`` with its
  reason. Never another exception from inside NumPy, never a different number.

And for PyTorch's error samples (``op.error_inputs``, inputs PyTorch rejects): minidl
rejects them too, with such an error.

The same for its layers (ModuleInfo: outputs, gradients of inputs and parameters, running
statistics) and its optimizers (OptimizerInfo: every setting PyTorch tests, five steps).

Skipped without PyTorch (and its test helper ``expecttest``, in the ``test`` extra).
"""
import re

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.kernels import layout

pytestmark = pytest.mark.filterwarnings('ignore::UserWarning')  # PyTorch's, on its samples
torch = pytest.importorskip('torch')
pytest.importorskip('expecttest')  # torch.testing._internal imports it
op_db = pytest.importorskip('torch.testing._internal.common_methods_invocations').op_db

CLEAR_ERRORS = (ValueError, TypeError, NotImplementedError)
TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-5}


def _dims(kwargs):
    """PyTorch's dim/keepdim as minidl's (NumPy's) axis/keepdims (for F.max, which takes
    NumPy's names only: PyTorch's max with a dim also returns the indices)."""
    names = {'dim': 'axis', 'keepdim': 'keepdims'}
    return {names.get(k, k): v for k, v in kwargs.items()}


def _swap(x, dim0=None, dim1=None):
    """torch.transpose(x, dim0, dim1) as the permutation minidl's transpose takes."""
    if x.ndim == 0:
        return F.transpose(x)
    axes = list(range(x.ndim))
    axes[dim0 % x.ndim], axes[dim1 % x.ndim] = axes[dim1 % x.ndim], axes[dim0 % x.ndim]
    return F.transpose(x, *axes)


def _lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """PyTorch divides alpha by size (it averages the squares): minidl's alpha is its alpha / size."""
    return F.local_response_norm(x, size, alpha / size, beta, k)


# PyTorch's op name -> (minidl's name for it, how minidl is called with the sample's input,
# args and kwargs, all torch tensors turned into minidl tensors)
OPS = {
    'nn.functional.conv2d': ('conv2d', F.conv2d),
    'nn.functional.max_pool2d': ('max_pool2d', F.max_pool2d),
    'nn.functional.avg_pool2d': ('avg_pool2d', F.avg_pool2d),
    'nn.functional.local_response_norm': ('local_response_norm', _lrn),
    'nn.functional.batch_norm': ('batch_norm', F.batch_norm),
    'nn.functional.dropout': ('dropout', F.dropout),
    'nn.functional.cross_entropy': ('cross_entropy', F.cross_entropy),
    'nn.functional.mse_loss': ('mse_loss', F.mse_loss),
    'nn.functional.linear': ('linear', F.linear),
    'nn.functional.gelu': ('gelu', F.gelu),
    'nn.functional.relu': ('relu', F.relu),
    'nn.functional.pad': ('pad', F.pad),
    'softmax': ('softmax', F.softmax),  # dim= and keepdim= are PyTorch's names, taken too
    'log_softmax': ('log_softmax', F.log_softmax),
    'tanh': ('tanh', F.tanh),
    'sigmoid': ('sigmoid', F.sigmoid),
    'exp': ('exp', F.exp),
    'log': ('log', F.log),
    'sqrt': ('sqrt', F.sqrt),
    'abs': ('abs', F.absolute),
    'neg': ('neg', F.neg),
    'add': ('add', F.add),
    'sub': ('sub', F.sub),
    'mul': ('mul', F.mul),
    'div': ('div', F.div),
    'pow': ('pow', F.pow),
    'matmul': ('matmul', F.matmul),
    'sum': ('sum', F.sum),
    'mean': ('mean', F.mean),
    'amax': ('max', lambda x, *a, **k: F.max(x, *a, **_dims(k))),
    'argmax': ('argmax', F.argmax),
    'reshape': ('reshape', F.reshape),
    'flatten': ('flatten', lambda x, start_dim=0, end_dim=-1: F.flatten(x, start_dim, end_dim)),
    'transpose': ('transpose', _swap),
    'permute': ('transpose', lambda x, dims: F.transpose(x, *dims)),
    'broadcast_to': ('broadcast_to', F.broadcast_to),
    'cat': ('concat', F.cat),
    '__getitem__': ('getitem', F.getitem),
    'max': ('max', F.max),  # the variant without dim (with dim PyTorch returns indices too)
    'T': ('transpose', lambda x: x.T),
    # Tensor's reflected operators: sample.input is self, so x.__radd__(y) is y + x
    '__radd__': ('add', minidl.Tensor.__radd__),
    '__rsub__': ('sub', minidl.Tensor.__rsub__),
    '__rmul__': ('mul', minidl.Tensor.__rmul__),
    '__rdiv__': ('div', minidl.Tensor.__rtruediv__),
    '__rpow__': ('pow', minidl.Tensor.__rpow__),
    '__rmatmul__': ('matmul', minidl.Tensor.__rmatmul__),
}
# the variants of those ops that minidl has: div's rounding modes, max over all elements,
# pad's modes
VARIANTS = ('', 'no_rounding_mode', 'trunc_rounding', 'floor_rounding', 'reduction_no_dim',
            'constant', 'reflect', 'replicate', 'replicate_negative', 'circular')

# (op, a pattern of minidl's message): samples minidl refuses on purpose, and why
REFUSED = {
    # momentum outside [0, 1] is refused even in evaluation mode, where PyTorch ignores it
    'nn.functional.batch_norm': [r"momentum must be a number in \[0, 1\], got -1\.",
                                 # a 1-D input has no channel axis (PyTorch: an empty batch)
                                 r"expected a 2-D .* input, got shape \(0,\)"],
    # PyTorch's legacy rule lets an empty 1-D tensor join tensors of any shape
    'cat': [r"concat: axis 1 is out of range for a tensor of shape \(0,\)",
            r"concat: shapes \[\(0,\), \(3, 2, 2\), \(0,\)\] differ outside axis 0"],
}


def _ops():
    return [pytest.param(op, id='.'.join(filter(None, (op.name, op.variant_test_name))))
            for op in op_db
            if op.name in OPS and op.variant_test_name in VARIANTS]


def _channels_last(a):
    """A 4-D array laid out NHWC (minidl's and PyTorch's channels_last), same values."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) \
        if a.ndim == 4 else a


class Leaves:
    """torch tensors turned into minidl tensors, remembering the pairs that need a gradient
    (``channels_last``: 4-D ones laid out NHWC, minidl's fast layout for images)."""

    def __init__(self, channels_last=False):
        self.pairs, self.layout = [], _channels_last if channels_last else np.copy

    def __call__(self, value):
        if isinstance(value, torch.Tensor):
            grad = value.requires_grad and value.is_floating_point()
            # minidl.Tensor keeps the array's memory layout (minidl.tensor copies to NCHW)
            ours = minidl.Tensor(self.layout(value.detach().numpy().copy()), requires_grad=grad)
            if grad:
                self.pairs.append((value, ours))
            return ours
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, torch.Tensor) for v in value):
            return type(value)(self(v) for v in value)
        return value

    def convert(self, sample):
        """The sample's (args, kwargs) as minidl takes them."""
        return ([self(sample.input), *map(self, sample.args)],
                {k: self(v) for k, v in sample.kwargs.items()})


def _random_dropout(sample):
    p = sample.kwargs.get('p', 0.5)
    return sample.kwargs.get('training', True) and 0 < p < 1


def _check_dropout(ours, theirs, leaves, dtype, p):
    """A random dropout sample: other random numbers than PyTorch's, so the rule instead:
    each output is 0 or x / (1 - p), and the gradient is the output gradient through the
    same mask, scaled the same."""
    (x, leaf), = leaves.pairs
    x, y = x.detach().numpy(), ours.numpy()
    kept = y != 0
    expected = np.where(kept, x / (1 - p), 0)
    if (diff := _close(y, torch.from_numpy(expected), TOLERANCE[dtype])) is not None:
        return f"dropout output: {diff}"
    gradient = np.random.default_rng(0).standard_normal(y.shape).astype(y.dtype)
    ours.backward(minidl.tensor(gradient))
    expected = np.where(kept, gradient / (1 - p), 0)
    seen = x != 0  # where x = 0 the output is 0 either way: the mask is not seen
    return _close(np.where(seen, leaf.grad.numpy(), expected), torch.from_numpy(expected),
                  TOLERANCE[dtype])


def _numpy(x):
    return x.numpy() if isinstance(x, (minidl.Tensor, torch.Tensor)) else np.asarray(x)


def _close(ours, theirs, rtol):
    ours, theirs = _numpy(ours), _numpy(theirs.detach())
    if ours.shape != theirs.shape:
        return f"shape {ours.shape}, PyTorch {theirs.shape}"
    if ours.dtype != theirs.dtype and theirs.dtype.kind == 'f':
        return f"dtype {ours.dtype}, PyTorch {theirs.dtype}"
    finite = np.isfinite(theirs)
    scale = max(1.0, float(np.abs(theirs[finite]).max())) if finite.any() else 1.0
    same = (np.abs(ours - theirs) <= rtol * scale) | (ours == theirs) | (
        np.isnan(ours) & np.isnan(theirs))
    if not same.all():
        where = tuple(np.argwhere(~same)[0])
        return f"at {where}: {ours[where]!r}, PyTorch {theirs[where]!r}"
    return None


def _refusal_allowed(op, message):
    return any(re.search(p, message) for p in REFUSED.get(op.name, []))


def run_sample(op, sample, dtype, channels_last=False):
    """None if minidl agrees with PyTorch on this sample (or refuses it as REFUSED allows),
    else what differs."""
    name, call = OPS[op.name]
    try:
        want = op(sample.input, *sample.args, **sample.kwargs)
    except Exception:  # noqa: BLE001 - not a sample PyTorch itself computes
        return None
    if want is NotImplemented:  # a reflected operator declining a sample
        return None
    leaves = Leaves(channels_last)
    args = leaves.convert(sample)
    try:
        got = call(*args[0], **args[1])
    except CLEAR_ERRORS as e:
        if name in str(e) and _refusal_allowed(op, str(e)):
            return None
        return f"refused: {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001 - the failure this test is for
        return f"crashed: {type(e).__name__}: {e}"
    if op.name == 'nn.functional.dropout' and _random_dropout(sample):
        return _check_dropout(got, want, leaves, dtype, sample.kwargs.get('p', 0.5))
    outputs = zip(got if isinstance(got, tuple) else (got,),
                  want if isinstance(want, tuple) else (want,))
    for i, (ours, theirs) in enumerate(outputs):
        if (diff := _close(ours, theirs, TOLERANCE[dtype])) is not None:
            return f"output {i}: {diff}"
    return _compare_gradients(got[0] if isinstance(got, tuple) else got,
                              want[0] if isinstance(want, tuple) else want, leaves, dtype)


def _compare_gradients(ours, theirs, leaves, dtype):
    if not leaves.pairs or not theirs.requires_grad:
        return None
    gradient = torch.randn(theirs.shape, dtype=theirs.dtype,
                           generator=torch.Generator().manual_seed(0))
    inputs = [t for t, _ in leaves.pairs]
    try:
        expected = torch.autograd.grad(theirs, inputs, gradient, allow_unused=True)
    except RuntimeError:  # PyTorch cannot differentiate this sample itself
        return None
    if any(g is None for g in expected):  # e.g. a leaf with zero strides, not in the graph
        return None
    try:
        ours.backward(minidl.tensor(gradient.numpy().copy()))
    except Exception as e:  # noqa: BLE001
        return f"backward crashed: {type(e).__name__}: {e}"
    for k, ((_, leaf), g) in enumerate(zip(leaves.pairs, expected)):
        got = leaf.grad if leaf.grad is not None else np.zeros(leaf.shape, leaf.dtype)
        if (diff := _close(got, g, TOLERANCE[dtype] * 10)) is not None:
            return f"gradient of input {k}: {diff}"
    return None


# ops whose gradient is not itself differentiable in minidl (NotImplementedError, naming it)
NO_DOUBLE_BACKWARD = {'nn.functional.local_response_norm', 'nn.functional.batch_norm'}


def run_double_backward(op, sample):
    """None if the gradient of minidl's gradient equals PyTorch's on this sample: for output
    gradient u and a vector v per input, d/dx of sum(v * dL/dx) (the Hessian-vector product
    that gradient penalties and double-backward checks use)."""
    try:
        want = op(sample.input, *sample.args, **sample.kwargs)
    except Exception:  # noqa: BLE001 - not a sample PyTorch itself computes
        return None
    want = want[0] if isinstance(want, tuple) else want
    leaves = Leaves()
    args, kwargs = leaves.convert(sample)
    if want is NotImplemented or not leaves.pairs or not want.requires_grad:
        return None
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(want.shape, dtype=want.dtype, generator=generator)
    inputs = [t for t, _ in leaves.pairs]
    try:
        first = torch.autograd.grad(want, inputs, u, create_graph=True, allow_unused=True)
        if any(g is None or not g.requires_grad for g in first):
            return None
        v = [torch.randn(g.shape, dtype=g.dtype, generator=generator) for g in first]
        expected = torch.autograd.grad(sum((g * w).sum() for g, w in zip(first, v)), inputs,
                                       allow_unused=True)
    except RuntimeError:  # PyTorch cannot differentiate this sample twice itself
        return None
    try:
        got = OPS[op.name][1](*args, **kwargs)
    except CLEAR_ERRORS:  # a refusal: test_pytorch_samples_float64 checks it is listed
        return None
    try:
        got = got[0] if isinstance(got, tuple) else got
        got.backward(minidl.tensor(u.numpy().copy()), create_graph=True)
        ours = [leaf.grad for _, leaf in leaves.pairs]
        for _, leaf in leaves.pairs:
            leaf.grad = None
        total = sum((g * minidl.tensor(w.numpy().copy())).sum() for g, w in zip(ours, v))
        if total.requires_grad:  # else every gradient is piecewise constant: zero
            total.backward()
    except NotImplementedError as e:
        return None if op.name in NO_DOUBLE_BACKWARD and 'double' in str(e) else \
            f"double backward refused: {e}"
    except Exception as e:  # noqa: BLE001
        return f"double backward crashed: {type(e).__name__}: {e}"
    # not compared where PyTorch's answer or a first-order gradient (of an input of the
    # same shape) is NaN or inf: at pow's poles and at negative bases with real exponents
    # (d/db NaN) which of -inf, inf, NaN or a number comes out depends on the order of the
    # terms, and PyTorch's where() leaks NaN from the branch it does not take
    for k, ((t, leaf), g) in enumerate(zip(leaves.pairs, expected)):
        theirs = np.zeros(t.shape) if g is None else g.detach().numpy(force=True)
        ours = _numpy(leaf.grad) if leaf.grad is not None else np.zeros(leaf.shape)
        singular = ~np.isfinite(theirs)
        for f in first:
            if f.shape == t.shape:
                singular |= ~np.isfinite(f.detach().numpy())
        if (diff := _close(np.where(singular, theirs, ours), torch.from_numpy(theirs),
                           1e-8)) is not None:
            return f"second-order gradient of input {k}: {diff}"
    return None


@pytest.mark.parametrize('op', _ops())
def test_pytorch_samples_double_backward(op):
    """The gradient's gradient (float64): what gradient penalties, Hessian-vector products
    and minidl.gradgradcheck differentiate."""
    samples = list(op.reference_inputs('cpu', torch.float64, requires_grad=True))
    failures = []
    for sample in samples:
        with np.errstate(all='ignore'):
            problem = run_double_backward(op, sample)
        if problem is not None:
            failures.append(f"{sample.summary()}\n    -> {problem}")
    assert not failures, f"{len(failures)} of {len(samples)} samples:\n" + "\n".join(failures[:5])


# the ops whose samples include 4-D inputs with C > 1 and H W > 1 (others are NCHW and
# NHWC at once); their channels-last kernels are those of the fast VGG
IMAGE_OPS = ('nn.functional.conv2d', 'nn.functional.max_pool2d', 'nn.functional.avg_pool2d',
             'nn.functional.batch_norm')


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32], ids=['float64', 'float32'])
@pytest.mark.parametrize('op', [p for p in _ops() if p.values[0].name in IMAGE_OPS])
def test_pytorch_samples_channels_last(op, dtype):
    """The same samples with every 4-D input laid out NHWC: the channels-last kernels of the
    fast VGG (their own im2col, BatchNorm, pooling passes) on PyTorch's shapes."""
    samples = list(op.sample_inputs('cpu', dtype, requires_grad=True))
    nhwc = [s for s in samples if layout.is_channels_last(_channels_last(s.input.numpy(
        force=True)))]
    assert nhwc, f"no sample of {op.name} has a channels-last input"
    failures = _failures(op, dtype, samples, channels_last=True)
    assert not failures, f"{len(failures)} of {len(samples)} samples:\n" + "\n".join(failures[:5])


def _error_inputs(op):
    try:
        return list(op.error_inputs('cpu') or [])
    except TypeError:  # the op has no error inputs
        return []


def _failures(op, dtype, samples, channels_last=False):
    failures = []
    for sample in samples:
        with np.errstate(all='ignore'):
            problem = run_sample(op, sample, dtype, channels_last)
        if problem is not None:
            failures.append(f"{sample.summary() if hasattr(sample, 'summary') else sample}"
                            f"\n    -> {problem}")
    return failures


@pytest.mark.parametrize('op', _ops())
def test_pytorch_samples_float64(op):
    samples = list(op.reference_inputs('cpu', torch.float64, requires_grad=True))
    failures = _failures(op, torch.float64, samples)
    assert not failures, f"{len(failures)} of {len(samples)} samples:\n" + "\n".join(failures[:5])


@pytest.mark.parametrize('op', _ops())
def test_pytorch_samples_float32(op):
    """The float32 kernels (another erf, BLAS in single precision, the fast paths) on the
    same samples."""
    if torch.float32 not in op.supported_dtypes('cpu'):
        pytest.skip(f"PyTorch has no float32 {op.name}")
    samples = list(op.sample_inputs('cpu', torch.float32, requires_grad=True))
    failures = _failures(op, torch.float32, samples)
    assert not failures, f"{len(failures)} of {len(samples)} samples:\n" + "\n".join(failures[:5])


@pytest.mark.parametrize('op', [p for p in _ops() if _error_inputs(p.values[0])])
def test_pytorch_error_samples(op):
    """Inputs PyTorch rejects: minidl rejects them too, with one clear error naming the op."""
    errors = _error_inputs(op)
    name, call = OPS[op.name]
    failures = []
    for error in errors:
        sample = error.sample_input
        if 'out' in sample.kwargs or not _has_tensor(sample.input):
            continue  # about torch's out= or its Python signature, which minidl does not mirror
        try:
            args, kwargs = Leaves().convert(sample)
        except ValueError:  # e.g. 65 dimensions: NumPy holds at most 64
            continue
        try:
            with np.errstate(all='ignore'):
                call(*args, **kwargs)
        except CLEAR_ERRORS as e:
            if name not in str(e):
                failures.append(f"{sample.summary()}\n    -> message without {name!r}: {e}")
            continue
        except Exception as e:  # noqa: BLE001
            failures.append(f"{sample.summary()}\n    -> {type(e).__name__}: {e}")
            continue
        failures.append(f"{sample.summary()}\n    -> accepted; PyTorch: "
                        f"{error.error_type.__name__} {error.error_regex!r}")
    assert not failures, f"{len(failures)} of {len(errors)} error samples:\n" + \
        "\n".join(failures[:5])


def _has_tensor(value):
    """A tensor, or a list of them (cat's input)."""
    return isinstance(value, torch.Tensor) or (isinstance(value, (list, tuple)) and any(
        isinstance(v, torch.Tensor) for v in value))



# ----------------------------------------------------------------------------- modules
# PyTorch's ModuleInfo database: each layer built with PyTorch's constructor arguments, in
# training and in evaluation mode, given PyTorch's weights (its state dict), then fed
# PyTorch's inputs. Outputs, the gradients of the inputs and of every parameter, and the
# buffers after the call (BatchNorm's running statistics) must equal PyTorch's.
module_db = pytest.importorskip('torch.testing._internal.common_modules').module_db

MODULE_REFUSED = {
    # PyTorch's cumulative running average (momentum=None) is not implemented
    'BatchNorm1d': [r"momentum=None \(PyTorch's cumulative average\) is not supported",
                    # an empty batch has no statistics to normalise with
                    r"expected more than 1 value per channel when training, got input "
                    r"shape \(0,"],
}
MODULE_REFUSED['BatchNorm2d'] = MODULE_REFUSED['BatchNorm1d']


def _modules():
    return [pytest.param(info, id=info.module_cls.__name__) for info in module_db
            if hasattr(minidl.nn, info.module_cls.__name__)]


def _our_module(name, args, kwargs):
    """minidl's layer for PyTorch's constructor arguments (tensors as NumPy arrays)."""
    args = [a.detach().numpy() if isinstance(a, torch.Tensor) else a for a in args]
    kwargs = {k: v.detach().numpy() if isinstance(v, torch.Tensor) else v
              for k, v in kwargs.items()}
    if name == 'LocalResponseNorm':  # PyTorch's alpha is per channel of the window, k 1
        size, alpha, beta, k = (list(args) + [1e-4, 0.75, 1.0][len(args) - 1:])[:4]
        args = [size, kwargs.pop('alpha', alpha) / size, kwargs.pop('beta', beta),
                kwargs.pop('k', k)]
    return getattr(minidl.nn, name)(*args, **kwargs)


def run_module_sample(info, sample, training, channels_last=False):
    """None if minidl's layer agrees with PyTorch's on this sample, else what differs."""
    name = info.module_cls.__name__
    ctor, call = sample.constructor_input, sample.forward_input
    try:
        theirs = info.module_cls(*ctor.args, **ctor.kwargs).to(torch.float64).train(training)
        before = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()
                  if not k.endswith('num_batches_tracked')}
        want = theirs(*call.args, **call.kwargs)
    except Exception:  # noqa: BLE001 - not a sample PyTorch itself computes
        return None
    leaves = Leaves(channels_last)
    inputs = [leaves(a) for a in call.args] + [leaves(v) for v in call.kwargs.values()]
    try:
        ours = _our_module(name, ctor.args, ctor.kwargs).double().train(training)
        ours.load_state_dict(before)
        got = ours(*inputs)
    except CLEAR_ERRORS as e:
        if any(re.search(p, str(e)) for p in MODULE_REFUSED.get(name, [])):
            return None
        return f"refused: {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001
        return f"crashed: {type(e).__name__}: {e}"
    got, want = (got[0], want[0]) if isinstance(want, tuple) else (got, want)
    if (diff := _close(got, want, TOLERANCE[torch.float64])) is not None:
        return f"output: {diff}"
    for key, value in theirs.state_dict().items():
        if key in ours.state_dict() and (diff := _close(ours.state_dict()[key], value, 1e-9)):
            return f"{key} after the call: {diff}"
    params = dict(theirs.named_parameters())
    leaves.pairs += [(params[k], p) for k, p in ours.named_parameters() if p.requires_grad]
    return _compare_gradients(got, want, leaves, torch.float64)


@pytest.mark.parametrize('channels_last', [False, True], ids=['nchw', 'channels_last'])
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('info', _modules())
def test_pytorch_module_samples(info, training, channels_last):
    samples = info.module_inputs_func(info, device='cpu', dtype=torch.float64,
                                      requires_grad=True, training=training)
    failures = []
    for sample in samples:
        with np.errstate(all='ignore'):
            problem = run_module_sample(info, sample, training, channels_last)
        if problem is not None:
            failures.append(f"{sample.constructor_input} {sample.forward_input}\n    -> {problem}")
    assert not failures, f"{len(failures)} of {len(samples)} samples:\n" + "\n".join(failures[:5])


# ----------------------------------------------------------------------------- optimizers
# PyTorch's OptimizerInfo database: each optimizer with each of PyTorch's test settings
# (maximize, amsgrad, nesterov, dampening, weight decay, ...), five steps on parameters of
# several shapes with the same gradients: the parameters after every step equal PyTorch's.
optim_db = pytest.importorskip('torch.testing._internal.common_optimizers').optim_db
SHAPES = [(3, 4), (5,), (), (2, 1, 3)]


def _settings():
    return [pytest.param(info, setting, id=f"{info.optim_cls.__name__}-{setting.desc}")
            for info in optim_db if hasattr(minidl.optim, info.optim_cls.__name__)
            for setting in info.optim_inputs_func(device='cpu')]


@pytest.mark.parametrize('info, setting', _settings())
def test_pytorch_optimizer_settings(info, setting):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(shape) for shape in SHAPES]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    ours = [minidl.tensor(v.copy(), requires_grad=True) for v in values]
    kwargs = {k: float(v) if isinstance(v, torch.Tensor) else v  # a tensor lr: its value
              for k, v in setting.kwargs.items()}
    torch_optimizer = info.optim_cls(theirs, **setting.kwargs)
    our_optimizer = getattr(minidl.optim, info.optim_cls.__name__)(ours, **kwargs)
    for step in range(5):
        for t, p in zip(theirs, ours):
            g = rng.standard_normal(t.shape)
            t.grad, p.grad = torch.tensor(g), minidl.tensor(g.copy())
        torch_optimizer.step()
        our_optimizer.step()
        for k, (t, p) in enumerate(zip(theirs, ours)):
            np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"parameter {k} after step {step + 1}")
