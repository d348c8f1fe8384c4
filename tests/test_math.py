"""Arithmetic, elementwise, matmul, reductions, shape ops, indexing and activations:
gradient checks (first and second order) in float64, parity with PyTorch, values and dtypes,
each on every device; the errors for bad input."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import check_torch_parity, rand, requires_torch, torch

# name: (our fn, torch fn (or None), input shapes, positive inputs?)
OPS = {
    'add': (lambda a, b: a + b, lambda a, b: a + b, [(3, 4), (3, 4)], False),
    'add_broadcast': (lambda a, b: a + b, lambda a, b: a + b, [(2, 3, 4), (3, 1)], False),
    'radd_scalar': (lambda a: 2.5 + a, lambda a: 2.5 + a, [(3,)], False),
    'sub_broadcast': (lambda a, b: a - b, lambda a, b: a - b, [(4, 1), (1, 5)], False),
    'rsub_scalar': (lambda a: 1 - a, lambda a: 1 - a, [(2, 3)], False),
    'mul_broadcast': (lambda a, b: a * b, lambda a, b: a * b, [(2, 3, 4), (4,)], False),
    'add_alpha': (lambda a, b: F.add(a, b, alpha=-2.5), lambda a, b: torch.add(a, b, alpha=-2.5),
                  [(2, 3, 4), (3, 1)], False),
    'sub_alpha': (lambda a, b: F.sub(a, b, alpha=3), lambda a, b: torch.sub(a, b, alpha=3),
                  [(4, 1), (1, 5)], False),
    'div': (lambda a, b: a / b, lambda a, b: a / b, [(3, 4), (3, 4)], True),
    # piecewise constant: the gradient is zero (inputs away from the jumps: |a/b| < 3)
    'div_trunc': (lambda a, b: F.div(a * 5, b, rounding_mode='trunc'),
                  lambda a, b: torch.div(a * 5, b, rounding_mode='trunc'), [(3, 4), (4,)],
                  False),
    'div_floor': (lambda a, b: F.div(a * 5, b, rounding_mode='floor'),
                  lambda a, b: torch.div(a * 5, b, rounding_mode='floor'), [(3, 4), (4,)],
                  True),
    'rdiv_scalar': (lambda a: 2 / a, lambda a: 2 / a, [(5,)], True),
    'neg': (lambda a: -a, lambda a: -a, [(3, 2)], False),
    'pow_scalar': (lambda a: a ** 3, lambda a: a ** 3, [(3, 4)], False),
    'pow_tensor': (lambda a, b: a ** b, lambda a, b: a ** b, [(3, 4), (3, 4)], True),
    'rpow': (lambda a: 2 ** a, lambda a: 2 ** a, [(4,)], False),
    'exp': (F.exp, torch.exp if torch else None, [(3, 4)], False),
    'log': (F.log, torch.log if torch else None, [(3, 4)], True),
    'sqrt': (F.sqrt, torch.sqrt if torch else None, [(3, 4)], True),
    'abs': (abs, abs, [(3, 4)], False),
    'matmul_2d': (F.matmul, torch.matmul if torch else None, [(3, 4), (4, 5)], False),
    'matmul_batched_broadcast': (F.matmul, torch.matmul if torch else None,
                                 [(2, 1, 3, 4), (3, 4, 2)], False),
    'matmul_vec_mat': (F.matmul, torch.matmul if torch else None, [(4,), (2, 4, 3)], False),
    'matmul_mat_vec': (F.matmul, torch.matmul if torch else None, [(2, 3, 4), (4,)], False),
    'matmul_vec_vec': (F.matmul, torch.matmul if torch else None, [(4,), (4,)], False),
    'linear': (F.linear, torch.nn.functional.linear if torch else None,
               [(5, 4), (3, 4), (3,)], False),
    'linear_no_bias_3d': (F.linear, torch.nn.functional.linear if torch else None,
                          [(2, 5, 4), (3, 4)], False),
    'sum_all': (lambda a: a.sum(), lambda a: a.sum(), [(3, 4)], False),
    'sum_axis': (lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), [(3, 4, 2)], False),
    'sum_axes_keepdims': (lambda a: a.sum(axis=(0, 2), keepdims=True),
                          lambda a: a.sum(dim=(0, 2), keepdim=True), [(3, 4, 2)], False),
    'mean_axis_neg': (lambda a: a.mean(axis=-1), lambda a: a.mean(dim=-1), [(3, 4)], False),
    'mean_all': (lambda a: a.mean(), lambda a: a.mean(), [(2, 3, 4)], False),
    'max_all': (lambda a: a.max(), lambda a: a.amax(), [(3, 4)], False),
    'max_axis_keepdims': (lambda a: a.max(axis=1, keepdims=True),
                          lambda a: a.amax(dim=1, keepdim=True), [(3, 5)], False),
    'max_axes': (lambda a: a.max(axis=(0, 2)), lambda a: a.amax(dim=(0, 2)), [(2, 3, 4)], False),
    'reshape': (lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1), [(2, 3, 4)], False),
    'reshape_tuple': (lambda a: a.reshape((6, 4)), lambda a: a.reshape(6, 4), [(2, 3, 4)], False),
    'transpose_default': (lambda a: a.transpose(), lambda a: a.permute(2, 1, 0),
                          [(2, 3, 4)], False),
    'transpose_axes': (lambda a: a.transpose(1, 2, 0), lambda a: a.permute(1, 2, 0),
                       [(2, 3, 4)], False),
    'T': (lambda a: a.T, lambda a: a.T, [(3, 4)], False),
    'flatten': (F.flatten, lambda a: torch.flatten(a, 1), [(2, 3, 2, 2)], False),
    'flatten_range': (lambda a: F.flatten(a, 1, 2), lambda a: torch.flatten(a, 1, 2),
                      [(2, 3, 2, 2)], False),
    'getitem_slice': (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [(3, 5)], False),
    'getitem_int_array_repeats': (lambda a: a[[0, 2, 0, 0]], lambda a: a[[0, 2, 0, 0]],
                                  [(3, 4)], False),
    'getitem_mixed': (lambda a: a[:, [1, 1, 3]], lambda a: a[:, [1, 1, 3]], [(2, 4)], False),
    'getitem_pairs': (lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])],
                      lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])], [(2, 3)], False),
    'getitem_bool': (lambda a: a[np.array([True, False, True])],
                     lambda a: a[torch.tensor([True, False, True])] if torch else None,
                     [(3, 2)], False),
    'concat': (lambda a, b: F.concat([a, b], axis=1), lambda a, b: torch.cat([a, b], dim=1),
               [(2, 3), (2, 4)], False),
    'concat_three': (lambda a, b, c: F.concat([a, b, c]), lambda a, b, c: torch.cat([a, b, c]),
                     [(1, 3), (2, 3), (3, 3)], False),
    'pad_last': (lambda a: F.pad(a, (1, 2)), lambda a: torch.nn.functional.pad(a, (1, 2)),
                 [(2, 3)], False),
    'pad_last_two_value': (lambda a: F.pad(a, (1, 0, 2, 1), value=0.5),
                           lambda a: torch.nn.functional.pad(a, (1, 0, 2, 1), value=0.5),
                           [(2, 3, 4)], False),
    'pad_crop': (lambda a: F.pad(a, (-1, 2, 1, -2), value=0.5),
                 lambda a: torch.nn.functional.pad(a, (-1, 2, 1, -2), value=0.5),
                 [(2, 3, 4)], False),
    'pad_reflect_1d': (lambda a: F.pad(a, (3, 2), mode='reflect'),
                       lambda a: torch.nn.functional.pad(a, (3, 2), mode='reflect'),
                       [(2, 4)], False),
    'pad_reflect_2d': (lambda a: F.pad(a, (1, 2, 2, 0), mode='reflect'),
                       lambda a: torch.nn.functional.pad(a, (1, 2, 2, 0), mode='reflect'),
                       [(1, 2, 3, 4)], False),
    'pad_replicate_2d': (lambda a: F.pad(a, (3, 1, 0, 4), mode='replicate'),
                         lambda a: torch.nn.functional.pad(a, (3, 1, 0, 4), mode='replicate'),
                         [(2, 3, 2)], False),
    'pad_replicate_3d': (lambda a: F.pad(a, (1, 0, 0, 2, 1, 1), mode='replicate'),
                         lambda a: torch.nn.functional.pad(a, (1, 0, 0, 2, 1, 1),
                                                           mode='replicate'),
                         [(1, 1, 2, 3, 2)], False),
    'pad_circular_2d': (lambda a: F.pad(a, (4, 1, 2, 3), mode='circular'),
                        lambda a: torch.nn.functional.pad(a, (4, 1, 2, 3), mode='circular'),
                        [(1, 2, 3, 4)], False),
    'relu': (F.relu, torch.relu if torch else None, [(3, 4)], False),
    'tanh': (F.tanh, torch.tanh if torch else None, [(3, 4)], False),
    'sigmoid': (F.sigmoid, torch.sigmoid if torch else None, [(3, 4)], False),
    'softmax': (F.softmax, lambda a: torch.softmax(a, -1), [(3, 5)], False),
    'softmax_axis0': (lambda a: F.softmax(a, axis=0), lambda a: torch.softmax(a, 0),
                      [(3, 5)], False),
    'log_softmax': (F.log_softmax, lambda a: torch.log_softmax(a, -1), [(3, 5)], False),
    'log_softmax_axis1_4d': (lambda a: F.log_softmax(a, axis=1),
                             lambda a: torch.log_softmax(a, 1), [(2, 3, 2, 2)], False),
    'mse_loss': (F.mse_loss, torch.nn.functional.mse_loss if torch else None,
                 [(3, 4), (3, 4)], False),
}


def _inputs(shapes, positive, device):
    return [rand(*s, seed=i, low=0.5 if positive else None, device=device)
            for i, s in enumerate(shapes)]


@pytest.mark.parametrize('name', sorted(OPS))
def test_gradcheck(name, device):
    fn, _, shapes, positive = OPS[name]
    assert minidl.gradcheck(fn, _inputs(shapes, positive, device))


# relu and max are piecewise linear: second derivative 0 almost everywhere, checked too
@pytest.mark.parametrize('name', sorted(OPS))
def test_gradgradcheck(name, device):
    fn, _, shapes, positive = OPS[name]
    assert minidl.gradgradcheck(fn, _inputs(shapes, positive, device))


@requires_torch
@pytest.mark.parametrize('name', sorted(k for k, v in OPS.items() if v[1] is not None))
def test_parity_with_torch(name, device):
    fn, torch_fn, shapes, positive = OPS[name]
    check_torch_parity(fn, torch_fn, _inputs(shapes, positive, device))


def test_max_ties_share_the_gradient_like_amax(device):
    x = minidl.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], dtype=np.float64, requires_grad=True,
                      device=device)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])


def test_relu_gradient_is_zero_at_zero(device):
    x = minidl.tensor([-1.0, 0.0, 2.0], requires_grad=True, device=device)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 1])


def test_indexing_with_a_tensor_index_accumulates_repeats(device):
    x = rand(4, device=device)
    idx = minidl.tensor(np.array([3, 3, 3, 1]), device=device)
    x[idx].sum().backward()
    assert x.grad.device == device
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0, 3])


def test_softmax_and_log_softmax_survive_huge_logits(device):
    x = minidl.tensor([[1e4, -1e4, 0.0]], requires_grad=True, device=device)
    assert np.isfinite(F.log_softmax(x).numpy()).all()
    F.softmax(x).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_sigmoid_survives_huge_inputs(device):
    y = F.sigmoid(minidl.tensor([-1e4, 1e4], device=device))
    np.testing.assert_array_equal(y.numpy(), [0, 1])


def test_astype_is_differentiable_and_casts_the_gradient_back(device):
    x = rand(3, device=device)
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and y.device == device
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.device == device
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


def test_comparisons_and_argmax_are_plain_tensors(device):
    x = minidl.tensor([1.0, 5.0, 3.0], device=device)
    assert (x > 2).device == device and not (x > 2).requires_grad
    assert (x > 2).tolist() == [False, True, True]
    assert (x == 5.0).numpy().sum() == 1
    assert x.argmax().item() == 1


def test_float32_stays_float32_through_every_elementwise_op(device):
    x = minidl.tensor(np.random.default_rng(0).random((2, 3), dtype=np.float32) + 0.5,
                      requires_grad=True, device=device)
    y = F.log_softmax(F.sigmoid(F.tanh(F.relu(x.exp().log().sqrt() ** 2 / 2 - 0.1))))
    assert y.dtype == np.float32 and y.device == device
    (y.sum() + x.max() + x.mean()).backward()
    assert x.grad.dtype == np.float32 and x.grad.device == device


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('call, pattern', [
    (lambda: rand(2, 3) + rand(4, 3), r"add: shapes \(2, 3\) and \(4, 3\)"),
    (lambda: rand(2, 3) * rand(3, 2), r"mul: shapes \(2, 3\) and \(3, 2\)"),
    (lambda: rand(2, 3) @ rand(4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\)"),
    (lambda: F.linear(rand(2, 3), rand(4, 5)), r"linear: input \(2, 3\).*\(4, 5\)"),
    (lambda: F.linear(rand(2, 3), rand(4, 3), rand(5)), r"linear: bias shape \(5,\)"),
    (lambda: rand(2, 3).reshape(4, 2), r"reshape: .*\(2, 3\).*\(4, 2\)"),
    (lambda: rand(2, 3).transpose(0, 0), r"transpose: .*\(2, 3\)"),
    (lambda: rand(2, 3).sum(axis=2), r"sum: axis 2 .*\(2, 3\)"),
    (lambda: F.softmax(rand(2, 3), axis=3), r"softmax: axis 3 .*\(2, 3\)"),
    (lambda: F.concat([rand(2, 3), rand(3, 4)], axis=1), r"concat: shapes"),
    (lambda: F.pad(rand(2, 3), (1,)), r"pad: .*\(2, 3\)"),
    (lambda: F.add(rand(2), rand(2), alpha='2'), r"add: alpha must be a number, got '2'"),
    (lambda: F.sub(rand(2), rand(2), alpha=None), r"sub: alpha must be a number, got None"),
    (lambda: F.add(minidl.tensor(np.array([1, 2])), np.array([3, 4]), alpha=0.5),
     r"add: alpha must be an int for int64 and int64 tensors .*got 0.5"),
    (lambda: F.div(rand(2), rand(2), rounding_mode='round'),
     r"div: rounding_mode must be one of \(None, 'trunc', 'floor'\), got 'round'"),
    (lambda: F.div(minidl.tensor(np.array([1, 2])), np.array([1, 0]),
                          rounding_mode='floor'),
     r"div: integer division by zero \(rounding_mode='floor'\)"),
    (lambda: F.argmax(rand(2, 3), 1, keepdims='yes'), r"argmax: keepdims must be a bool"),
    (lambda: F.argmax(rand(2, 3), 1, keepdims=True, keepdim=False),
     r"argmax: keepdims=True and keepdim=False disagree"),
    (lambda: F.pad(rand(2, 3), (-2, -2)), r"pad: widths \(-2, -2\) crop axis 1 .*\(2, 3\)"),
    (lambda: F.pad(rand(2, 3), (1, 1), mode='wrap'), r"pad: mode must be one of .*'wrap'"),
    (lambda: F.pad(rand(2, 3), (1, 1), 'reflect', 1.0), r"pad: mode 'reflect' takes no value"),
    (lambda: F.pad(rand(1, 2, 3), (3, 0), mode='reflect'),
     r"pad: mode 'reflect' needs widths below its length 3 .*axis 2.*\(3, 0\)"),
    (lambda: F.pad(rand(2, 3), (4, 0), mode='circular'),
     r"pad: mode 'circular' needs widths at most its length after cropping, 3 .*got \(4, 0\)"),
    (lambda: F.pad(rand(2, 3), (2, -2), mode='circular'),
     r"pad: mode 'circular' needs widths at most its length after cropping, 1 .*got \(2, -2\)"),
    (lambda: F.pad(rand(2, 3), (-3, 0), mode='replicate'),
     r"pad: mode 'replicate' .*leaving at least one element.*got \(-3, 0\)"),
    (lambda: F.pad(rand(3), (1, 1), mode='replicate'),
     r"pad: mode 'replicate' pads the last 1, 2 or 3 axes .*2-d or 3-d tensor, got shape \(3,\)"),
    (lambda: F.pad(rand(2, 3, 4), (1, 1, 1, 1, 1, 1), mode='circular'),
     r"pad: mode 'circular' .*4-d or 5-d tensor, got shape \(2, 3, 4\)"),
    (lambda: rand(2, 3)[5], r"getitem: .*\(2, 3\)"),
    (lambda: F.mse_loss(rand(2, 3), rand(3, 2)), r"mse_loss: .*\(2, 3\).*\(3, 2\)"),
])
def test_bad_input_names_the_op_and_shapes(call, pattern):
    with pytest.raises((ValueError, IndexError, ZeroDivisionError), match=pattern):
        call()


# ----------------------------------------------------------------------------- dtypes
def _torch_dtype_name(t):
    return str(t.dtype).replace('torch.', '')


def _pair(spec, device):
    """A minidl operand and a torch one from (dtype, shape), or a Python number as it is."""
    if not isinstance(spec, tuple):
        return spec, spec
    dtype, shape = spec
    data = (np.arange(np.prod(shape, dtype=int)) % 3 + 1).reshape(shape).astype(dtype)
    return minidl.tensor(data, device=device), torch.tensor(data)


# (name, a, b, op): a and b are (dtype, shape) or Python numbers
PROMOTIONS = [
    ('int64 + float', (np.int64, (3,)), 2.5, 'add'),
    ('int32 + int', (np.int32, (3,)), 2, 'add'),
    ('uint8 * int', (np.uint8, (3,)), 3, 'mul'),
    ('int64 / int', (np.int64, (3,)), 2, 'div'),
    ('int / int tensors', (np.int64, (3,)), (np.int32, (3,)), 'div'),
    ('bool + int', (np.bool_, (3,)), 2, 'add'),
    ('bool * float', (np.bool_, (3,)), 2.5, 'mul'),
    ('int64 + float32 tensors', (np.int64, (3,)), (np.float32, (3,)), 'add'),
    ('float16 - int64 tensors', (np.float16, (3,)), (np.int64, (3,)), 'sub'),
    ('float32 * 0-d float64', (np.float32, (3,)), (np.float64, ()), 'mul'),
    ('0-d float64 + float32', (np.float64, ()), (np.float32, (3,)), 'add'),
    ('int64 * 0-d float64', (np.int64, (3,)), (np.float64, ()), 'mul'),
    ('int32 + 0-d int64', (np.int32, (3,)), (np.int64, ()), 'add'),
    ('float16 + float32 tensors', (np.float16, (3,)), (np.float32, (3,)), 'add'),
    ('float32 / float64 tensors', (np.float32, (3,)), (np.float64, (3,)), 'div'),
    ('float16 * float', (np.float16, (3,)), 0.1, 'mul'),
    ('int ** int', (np.int64, (3,)), 2, 'pow'),
    ('int ** float', (np.int64, (3,)), 0.5, 'pow'),
    ('int rpow', 2, (np.int64, (3,)), 'pow'),
    ('float rdiv of int', 2.0, (np.int64, (3,)), 'div'),
]
OPERATORS = {'add': lambda a, b: a + b, 'sub': lambda a, b: a - b, 'mul': lambda a, b: a * b,
             'div': lambda a, b: a / b, 'pow': lambda a, b: a ** b}


@requires_torch
@pytest.mark.parametrize('name, a, b, op', PROMOTIONS, ids=[p[0] for p in PROMOTIONS])
def test_arithmetic_promotes_dtypes_as_torch_does(name, a, b, op, device):
    (a, ta), (b, tb) = _pair(a, device), _pair(b, device)
    ours, theirs = OPERATORS[op](a, b), OPERATORS[op](ta, tb)
    assert str(ours.dtype) == _torch_dtype_name(theirs) and ours.device == device
    np.testing.assert_allclose(ours.numpy().astype(np.float64),
                               theirs.double().numpy(), rtol=1e-3)


@requires_torch
@pytest.mark.parametrize('fn', ['exp', 'log', 'sqrt', 'tanh', 'sigmoid'])
@pytest.mark.parametrize('dtype', [np.int64, np.uint8, np.bool_])
def test_float_functions_of_integers_compute_in_float32_as_torch(fn, dtype, device):
    data = np.array([1, 2, 3]).astype(dtype)
    ours = getattr(F, fn)(minidl.tensor(data, device=device))
    theirs = getattr(torch, fn)(torch.tensor(data))
    assert ours.dtype == np.float32 and _torch_dtype_name(theirs) == 'float32'
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_int_divided_by_float64_is_computed_in_float64(device):
    big = minidl.tensor(np.array([2 ** 24 + 1], np.int32), device=device)  # not a float32
    y = big / minidl.tensor(np.ones(1), dtype=np.float64, device=device)
    assert y.dtype == np.float64 and y.item() == 2 ** 24 + 1


def test_gradients_through_a_promoting_op_come_back_in_each_inputs_dtype(device):
    a = minidl.tensor(np.ones(3, np.float32), requires_grad=True, device=device)
    b = minidl.tensor(np.float64(2.0), dtype=np.float64, requires_grad=True, device=device)
    y = a * b  # float32, as in PyTorch (a dimensioned tensor beats a 0-d one)
    assert y.dtype == np.float32
    y.sum().backward()
    assert (a.grad.dtype, b.grad.dtype) == (np.float32, np.float64)
    np.testing.assert_array_equal(b.grad.numpy(), 3.0)


def test_a_gradient_seed_of_another_dtype_is_cast_to_the_outputs(device):
    x = minidl.tensor(np.ones((2, 3), np.float32), requires_grad=True, device=device)
    w = minidl.tensor(np.ones((4, 3), np.float32), requires_grad=True, device=device)
    F.linear(x, w).backward(minidl.tensor(np.ones((2, 4)), device=device))  # float64 seed
    assert x.grad.dtype == w.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), 4.0)


def test_concat_promotes_as_arithmetic_does(device):
    a = minidl.tensor(np.ones(2, np.int64), device=device)
    b = minidl.tensor(np.ones(2, np.float32), requires_grad=True, device=device)
    y = F.concat([a, b])
    assert y.dtype == np.float32  # NumPy would give float64
    y.sum().backward()
    assert b.grad.dtype == np.float32


def test_float16_sum_and_mean_accumulate_in_float32(device):
    x = minidl.tensor(np.full(1000, 300, np.float16), requires_grad=True, device=device)
    assert x.mean().item() == 300.0  # a float16 running sum overflows at 65504
    assert x.mean().dtype == np.float16
    ones = np.ones(4097, np.float16)
    assert minidl.tensor(ones, device=device).sum().item() == 4096  # 4097 rounds to 4096 once
    x.mean().backward()
    assert x.grad.dtype == np.float16 and np.allclose(x.grad.numpy(), 1e-3, rtol=1e-3)


# ----------------------------------------------------------------------------- edge cases
@requires_torch
@pytest.mark.parametrize('shape, axis', [((3, 0), -1), ((0, 3), -1), ((0, 3), 0), ((2, 0, 3), 1)])
@pytest.mark.parametrize('fn', ['softmax', 'log_softmax'])
def test_softmax_family_over_empty_tensors_matches_torch(fn, shape, axis, device):
    x = minidl.tensor(np.zeros(shape), dtype=np.float64, requires_grad=True, device=device)
    tx = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    y, ty = getattr(F, fn)(x, axis=axis), getattr(torch, fn)(tx, axis)
    assert y.shape == tuple(ty.shape) and y.dtype == np.float64
    y.backward(minidl.tensor(np.zeros(shape), device=device))
    ty.backward(torch.zeros(shape, dtype=torch.float64))
    assert x.grad.shape == tuple(tx.grad.shape) == shape


@requires_torch
@pytest.mark.parametrize('fn', ['softmax', 'log_softmax'])
@pytest.mark.parametrize('axis', [0, -1])
def test_softmax_family_of_a_0d_tensor_matches_torch(fn, axis, device):
    check_torch_parity(lambda t: getattr(F, fn)(t, axis=axis),
                       lambda t: getattr(torch, fn)(t, axis), [rand(device=device)])


ZERO_D_REDUCTIONS = {
    'sum_axis0': (lambda t: t.sum(axis=0), lambda t: t.sum(0)),
    'sum_axis-1_keepdims': (lambda t: t.sum(axis=-1, keepdims=True),
                            lambda t: t.sum(-1, keepdim=True)),
    'sum_axes_tuple': (lambda t: t.sum(axis=(0,)), lambda t: t.sum((0,))),
    'mean_axis0': (lambda t: t.mean(axis=0), lambda t: t.mean(0)),
    'mean_axis-1': (lambda t: t.mean(axis=-1), lambda t: t.mean(-1)),
    'max_axis0': (lambda t: t.max(axis=0), lambda t: t.amax(0)),
    'max_axis-1_keepdims': (lambda t: t.max(axis=-1, keepdims=True),
                            lambda t: t.amax(-1, keepdim=True)),
    'flatten': (F.flatten, torch.flatten if torch else None),
    'flatten_0_-1': (lambda t: F.flatten(t, 0, -1), lambda t: torch.flatten(t, 0, -1)),
}


@requires_torch
@pytest.mark.parametrize('name', sorted(ZERO_D_REDUCTIONS))
def test_reductions_and_flatten_of_a_0d_tensor_match_torch(name, device):
    ours, theirs = ZERO_D_REDUCTIONS[name]
    check_torch_parity(ours, theirs, [rand(device=device)])


@requires_torch
@pytest.mark.parametrize('shape, axis', [((0,), None), ((0, 3), 0), ((2, 0), 1), ((2, 0), 0)])
def test_mean_over_no_elements_is_nan_like_torch(shape, axis, device):
    x = minidl.tensor(np.zeros(shape), dtype=np.float64, requires_grad=True, device=device)
    tx = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    y, ty = x.mean(axis=axis), (tx.mean() if axis is None else tx.mean(axis))
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())  # NaN where torch has NaN
    y.sum().backward()
    assert x.grad.shape == shape


@requires_torch
def test_max_and_flatten_of_empty_tensors_keep_the_other_axes(device):
    x = minidl.tensor(np.zeros((0, 3, 4)), dtype=np.float64, device=device)
    assert x.max(axis=1).shape == tuple(torch.zeros(0, 3, 4).amax(1).shape) == (0, 4)
    assert F.flatten(x).shape == tuple(torch.flatten(torch.zeros(0, 3, 4), 1).shape) == (0, 12)


# ----------------------------------------------------------------------------- pad modes
def test_pad_modes_read_the_source_positions(device):
    x = minidl.tensor(np.array([[1.0, 2.0, 3.0]]), device=device)
    assert F.pad(x, (2, 1), mode='reflect').numpy().tolist() == [[3, 2, 1, 2, 3, 2]]
    assert F.pad(x, (2, 1), mode='replicate').numpy().tolist() == [[1, 1, 1, 2, 3, 3]]
    assert F.pad(x, (2, 1), mode='circular').numpy().tolist() == [[2, 3, 1, 2, 3, 1]]
    assert F.pad(x, (-1, 1), value=7).numpy().tolist() == [[2, 3, 7]]


def test_pad_replicate_gradient_piles_up_on_the_edge(device):
    x = minidl.tensor(np.zeros((1, 3)), requires_grad=True, device=device)
    F.pad(x, (2, 1), mode='replicate').sum().backward()
    assert x.grad.numpy().tolist() == [[3, 1, 2]]


def test_pad_value_as_third_positional_argument_still_works(device):
    x = rand(2, 3, device=device)
    assert np.array_equal(F.pad(x, (1, 1), 0.5).numpy(), F.pad(x, (1, 1), value=0.5).numpy())


# ----------------------------------------------------------------------------- alpha, rounding
def test_add_and_sub_alpha_scale_the_second_operand(device):
    a, b = rand(3, device=device), rand(3, seed=1, device=device)
    np.testing.assert_allclose(F.add(a, b, alpha=2).numpy(), a.numpy() + 2 * b.numpy())
    np.testing.assert_allclose(F.sub(a, b, alpha=0.5).numpy(), a.numpy() - 0.5 * b.numpy())


def test_integer_add_alpha_stays_integer(device):
    out = F.add(minidl.tensor(np.array([1, 2]), device=device),
                minidl.tensor(np.array([3, 4]), device=device), alpha=-2)
    assert out.dtype == np.int64 and out.numpy().tolist() == [-5, -6]


@pytest.mark.parametrize('mode, expected', [('trunc', [3, -3, -3, 3, 0]),
                                            ('floor', [3, -4, -4, 3, 0])])
def test_div_rounding_of_integers_is_exact_and_integer(mode, expected, device):
    a = minidl.tensor(np.array([7, -7, 7, -7, 0]), device=device)
    b = minidl.tensor(np.array([2, 2, -2, -2, 3]), device=device)
    out = F.div(a, b, rounding_mode=mode)
    assert out.dtype == np.int64 and out.numpy().tolist() == expected
    assert F.div(a.double(), b.double(), rounding_mode=mode).numpy().tolist() == expected


def test_div_rounding_gives_a_zero_gradient(device):
    a, b = rand(3, device=device), rand(3, seed=1, low=0.5, device=device)
    F.div(a, b, rounding_mode='floor').sum().backward()
    assert (a.grad.numpy() == 0).all() and (b.grad.numpy() == 0).all()


@requires_torch
@pytest.mark.parametrize('axis', [None, 0, -1])
@pytest.mark.parametrize('keep', [False, True])
def test_argmax_keepdims_and_torch_keepdim_match_torch(axis, keep, device):
    x = rand(3, 4, 2, requires_grad=False, device=device)
    expected = torch.argmax(torch.tensor(x.numpy()), dim=axis, keepdim=keep).numpy()
    for out in (F.argmax(x, axis, keepdims=keep), x.argmax(axis=axis, keepdim=keep)):
        assert out.shape == expected.shape and (out.numpy() == expected).all()
