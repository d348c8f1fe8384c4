"""Hostile input to minidl's Python API (tensors, autograd, modules, checkpoints, data,
initialisation, gradient checks, graphs), as an independent checker would send it. The
house rule: ONE clear exception naming the function and what was expected and given,
never a deep NumPy traceback, never a silent wrong answer, nothing a user saved lost.
Where PyTorch accepts an input and defines a result, the result is PyTorch's."""
import functools
import os

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.graph as graph
from minidl import nn
from minidl.data import CIFAR10, DataLoader, transforms as T
from minidl.nn import init
from minidl.serialization import CheckpointError

from helpers import requires_torch, torch


def f64(*shape, requires_grad=False):
    return minidl.Tensor(np.ones(shape), requires_grad=requires_grad)


class Images:
    """A dataset of n blank 1x2x2 images with labels 0, 1, 2, 0, ..."""

    def __init__(self, n=5, images=None):
        self.images = np.zeros((n, 1, 2, 2), np.uint8) if images is None else images
        self.labels = np.arange(n) % 3

    def __len__(self):
        return len(self.labels)


# ----------------------------------------------------------------------------- tensors
@pytest.mark.parametrize('data, dtype, error, message', [
    ([300], np.uint8, ValueError, r"tensor: cannot make a uint8 tensor from \[300\]"),
    ([float('nan')], np.int64, ValueError, r"tensor: cannot make a int64 tensor from \[nan\]"),
    (float('inf'), np.int32, ValueError, r"tensor: cannot make a int32 tensor from inf"),
    (10 ** 30, np.int64, ValueError, r"tensor: cannot make a int64 tensor from 1000"),
    (1 + 2j, np.float32, TypeError, r"tensor: cannot make a float32 tensor from \(1\+2j\)"),
    ([1 + 2j], np.float64, TypeError, r"tensor: cannot make a float64 tensor from \[\(1\+2j\)\]"),
])
def test_numbers_that_the_requested_dtype_cannot_hold_are_an_error_not_wrapped(
        data, dtype, error, message):
    with pytest.raises(error, match=message):
        minidl.tensor(data, dtype=dtype)


def test_python_numbers_the_dtype_holds_convert_as_in_pytorch():
    assert minidl.tensor([1.7, -2.5], dtype=np.int64).tolist() == [1, -2]  # truncated
    assert minidl.tensor([255, 0], dtype=np.uint8).tolist() == [255, 0]
    assert minidl.tensor(1e30).item() == pytest.approx(1e30)   # float32 holds it


def test_a_0d_tensor_has_no_length_and_cannot_be_iterated():
    x = minidl.tensor(3.0)
    with pytest.raises(TypeError, match=r"len\(\) of a 0-d tensor"):
        len(x)
    with pytest.raises(TypeError, match=r"iteration over a 0-d tensor"):
        list(x)  # was []: Python iterated by indexing until the IndexError of x[0]


def test_iterating_a_tensor_gives_its_rows():
    rows = list(minidl.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]


def test_size_of_a_dimension_that_does_not_exist_names_it():
    with pytest.raises(IndexError, match=r"Tensor.size: dim 5 is out of range for a tensor "
                                         r"of shape \(2, 3\)"):
        f64(2, 3).size(5)
    with pytest.raises(IndexError, match=r"Tensor.size: dim 0 given, but a 0-d tensor"):
        minidl.tensor(1.0).size(0)
    assert f64(2, 3).size(-1) == 3


def test_a_one_element_integer_tensor_is_an_index_as_in_pytorch():
    x = minidl.tensor(np.arange(6.0))
    n = minidl.tensor(np.array(2))
    assert x[n:].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert list(range(n)) == [0, 1]
    with pytest.raises(TypeError, match=r"only an integer tensor of one element converts "
                                        r"to an index, got float32"):
        [1, 2, 3][minidl.tensor(1.0)]


@pytest.mark.parametrize('op', ['__eq__', '__lt__'])
def test_comparing_shapes_that_do_not_broadcast_names_the_op_and_the_shapes(op):
    with pytest.raises(ValueError, match=rf"{op.strip('_')}: cannot compare a tensor of shape "
                                         rf"\(2,\) with ndarray \(3,\): operands could not "
                                         rf"be broadcast"):
        getattr(f64(2), op)(f64(3))


@pytest.mark.parametrize('flag', ['no', None, 1])
def test_requires_grad_is_true_or_false_not_any_truthy_value(flag):
    with pytest.raises(TypeError, match=r"Tensor.requires_grad must be True or False"):
        minidl.tensor([1.0], requires_grad=flag)
    with pytest.raises(TypeError, match=r"Tensor.requires_grad must be True or False"):
        nn.Linear(2, 2).requires_grad_(flag)


def test_to_none_is_the_tensor_itself_and_astype_none_is_no_dtype():
    x = f64(3)
    assert x.to(None) is x  # was a float64 copy: NumPy reads dtype None as float64
    assert minidl.tensor([1.0]).to(None).dtype == np.float32
    with pytest.raises(TypeError, match=r"astype: None is not a dtype"):
        x.astype(None)


@requires_torch
def test_a_cast_to_an_integer_dtype_is_not_differentiable_as_in_pytorch():
    x = f64(3, requires_grad=True)
    y = x.to(np.int64)
    tx = torch.ones(3, dtype=torch.float64, requires_grad=True)
    assert y.requires_grad is tx.to(torch.int64).requires_grad is False
    with pytest.raises(RuntimeError, match=r"backward: the tensor does not require grad"):
        (y * 2.0).sum().backward()  # was x.grad == 2, through a rounding
    assert (x.astype(np.float32) * 2).sum().requires_grad  # a float cast still is


# ----------------------------------------------------------------------------- in place
def test_in_place_arithmetic_on_a_leaf_that_requires_grad_is_an_error_with_grad_on():
    w = f64(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"x \+= y: x is a leaf tensor that requires grad "
                                           r"\(\(3,\) float64 on cpu\)"):
        w += 1  # was: w silently rebound to a new non-leaf tensor
    assert w.is_leaf and w.tolist() == [1.0, 1.0, 1.0]


@requires_torch
def test_in_place_update_of_a_leaf_under_no_grad_changes_it_in_place_as_in_pytorch():
    w = minidl.tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    tw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    for x in (w, tw):
        (x * x).sum().backward()
    before = w
    with minidl.no_grad():
        w -= 0.1 * w.grad
        w *= 2
    with torch.no_grad():
        tw -= 0.1 * tw.grad
        tw *= 2
    assert w is before and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-15)
    with minidl.no_grad(), pytest.raises(ValueError, match=r"x \+= y: the result has shape "
                                                         r"\(2, 3\), x has shape \(3,\)"):
        w += f64(2, 3)
    with minidl.no_grad(), pytest.raises(TypeError, match=r"x \*= y: the result is complex"):
        w *= 1j
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-15)


def test_in_place_arithmetic_on_other_tensors_makes_a_new_tensor():
    x = f64(3)
    y = x
    x += 1
    assert x.tolist() == [2.0] * 3 and y.tolist() == [1.0] * 3
    w = f64(3, requires_grad=True)
    h = w * 2
    h += 1  # a non-leaf: x = x + y, with the same gradients as PyTorch's in-place op
    h.sum().backward()
    assert w.grad.tolist() == [2.0] * 3


# ----------------------------------------------------------------------------- autograd
def test_a_complex_gradient_for_a_real_output_is_refused_not_cast():
    x = f64(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"backward: grad is complex128 but the output is "
                                        r"float64"):
        (x * 2).backward(np.ones(3, complex) * 1j)  # was: the imaginary part dropped


@pytest.mark.parametrize('value, error, message', [
    (lambda: np.ones(5), ValueError, r"register_hook: hook .* changed the gradient from "
                                     r"\(3,\) float64 to \(5,\) float64"),
    (lambda: minidl.tensor(np.ones(3, np.int64)), ValueError,
     r"changed the gradient from \(3,\) float64 to \(3,\) int64"),
    (lambda: np.ones(3, np.float32), ValueError, r"to \(3,\) float32"),
    (lambda: 'grad', TypeError, r"register_hook: hook .* returned str, expected None or a "
                                r"gradient Tensor of shape \(3,\) float64"),
])
@pytest.mark.parametrize('leaf', [True, False], ids=['leaf', 'non-leaf'])
def test_a_hook_must_keep_the_gradient_shape_and_dtype(value, error, message, leaf):
    x = f64(3, requires_grad=True)
    hooked = x if leaf else x * 2
    hooked.register_hook(lambda g: value())
    with pytest.raises(error, match=message):
        (hooked * 3).sum().backward()  # (a leaf used to get an int64 .grad)


def test_a_hook_that_is_not_callable_is_refused_when_registered():
    with pytest.raises(TypeError, match=r"register_hook: the hook must be callable\(grad\), "
                                        r"got int 3"):
        f64(3, requires_grad=True).register_hook(3)


@pytest.mark.parametrize('grad', [np.ones(3, np.int64), np.ones(3, np.float32)])
def test_an_assigned_gradient_tensor_must_have_the_tensor_dtype(grad):
    x = f64(3, requires_grad=True)
    with pytest.raises(TypeError, match=rf"Tensor.grad: assigned gradient has dtype "
                                        rf"{grad.dtype}, the tensor has dtype float64"):
        x.grad = minidl.Tensor(grad)
    x.grad = grad  # an array is converted, as before
    assert x.grad.dtype == np.float64


def test_grad_wants_one_grad_output_per_output():
    x = f64(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"grad: 1 grad_outputs for 2 outputs"):
        minidl.grad([x * 2, x * 3], [x], [f64(3)])  # was: the second output ignored


def test_grad_inputs_and_outputs_must_be_tensors():
    x = f64(3, requires_grad=True)
    with pytest.raises(TypeError, match=r"grad: inputs must be Tensors, got ndarray at "
                                        r"position 0"):
        minidl.grad((x * 2).sum(), [np.ones(3)])  # was: "input 0 was not used"


def custom_op(forward=lambda x: x * 2, backward=lambda gy: gy):
    """A Function whose forward (on arrays) and backward (on Tensors) are given."""
    op = type('Custom', (minidl.Function,), {'forward': lambda self, x: forward(x),
                                             'backward': lambda self, gy: backward(gy)})
    return op()


@pytest.mark.parametrize('result', [[1.0, 2.0, 3.0], 6.0, None])
def test_a_function_forward_must_return_arrays(result):
    with pytest.raises(TypeError, match=r"Custom.forward returned \w+, expected an array"):
        custom_op(forward=lambda x: result)(f64(3, requires_grad=True))  # was: float32


@pytest.mark.parametrize('result, error, message', [
    ('abc', TypeError, r"Custom.backward returned str for input 0, expected a Tensor"),
    ([np.ones(3)], TypeError, r"Custom.backward returned list for input 0"),
    (np.ones(3) * 1j, TypeError, r"Custom.backward: gradient for input 0 is complex128, the "
                                 r"input is float64"),
])
def test_a_function_backward_must_return_real_gradient_tensors(result, error, message):
    y = custom_op(backward=lambda gy: result)(f64(3, requires_grad=True))
    with pytest.raises(error, match=message):
        y.sum().backward()  # a complex gradient used to lose its imaginary part


# ----------------------------------------------------------------------------- nn.Module
@pytest.mark.parametrize('register', ['register_parameter', 'register_buffer', 'add_module'])
@pytest.mark.parametrize('name, error, message', [
    ('a.b', KeyError, r"name must be non-empty and without '\.', got 'a\.b'"),
    ('', KeyError, r"name must be non-empty and without '\.', got ''"),
    (3, TypeError, r"name must be a str, got int 3"),
    ('forward', KeyError, r"attribute 'forward' already exists"),
    ('extra', KeyError, r"attribute 'extra' already exists"),
])
def test_registered_names_follow_pytorchs_rules(register, name, error, message):
    m = nn.Module()
    m.extra = 3
    value = {'register_parameter': nn.Parameter(np.ones(2)),
             'register_buffer': np.ones(2), 'add_module': nn.ReLU()}[register]
    with pytest.raises(error, match=message):
        getattr(m, register)(name, value)
    assert list(m.state_dict()) == [] and m.extra == 3


@requires_torch
def test_registering_under_the_name_of_another_kind_is_refused_as_in_pytorch():
    m, tm = nn.Module(), torch.nn.Module()
    m.w = nn.Parameter(np.ones(2))
    tm.w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(KeyError):
        tm.register_buffer('w', torch.ones(2))
    with pytest.raises(KeyError, match=r"attribute 'w' already exists \(cannot register a "
                                       r"buffer"):
        m.register_buffer('w', np.ones(2))  # was: a buffer shadowed by the parameter
    m.register_parameter('w', nn.Parameter(np.zeros(2)))  # the same kind is replaced
    assert m.w.tolist() == [0.0, 0.0]


@pytest.mark.parametrize('value', [minidl.tensor(np.ones(2)), np.ones(2), [1.0, 2.0]])
def test_register_parameter_wants_a_parameter_or_none(value):
    m = nn.Module()
    with pytest.raises(TypeError, match=r"Module.register_parameter: 'w' must be a Parameter "
                                        r"or None, got"):
        m.register_parameter('w', value)  # was: a plain attribute, not in state_dict
    assert list(m.parameters()) == []


@pytest.mark.parametrize('value, hint', [([1, 2], 'list'), ('abc', 'str'),
                                         (minidl.tensor([1.0]), r"Tensor \(a Tensor: pass its "
                                                                r"\.data\)")])
def test_a_buffer_is_an_array_or_none(value, hint):
    m = nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match=rf"Module: buffer 'b' must be a NumPy or CuPy array "
                                        rf"or None, got {hint}"):
        nn.Module().register_buffer('b', value)
    with pytest.raises(TypeError, match=r"BatchNorm1d: buffer 'running_mean' must be"):
        m.running_mean = value
    assert m.running_mean.tolist() == [0.0, 0.0]


def test_a_shared_submodule_is_listed_once_and_its_state_dict_loads_back():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert [n for n, _ in model.named_modules()] == ['', '0', '1']  # as PyTorch
    state = model.state_dict()
    assert list(state) == ['0.weight', '0.bias']
    model.load_state_dict(state)  # was: "missing keys: ['2.weight', '2.bias']"


def test_load_state_dict_refuses_what_is_not_a_dict():
    for value in (None, [('weight', 1)]):
        with pytest.raises(TypeError, match=r"load_state_dict \(Linear\): expected a dict of "
                                            r"arrays by name, got"):
            nn.Linear(3, 2).load_state_dict(value)


@pytest.mark.parametrize('bad, message', [
    (np.array(['a', 'b']), r"bias: expected numbers, got dtype <U1"),
    (np.array([None, 1]), r"bias: expected numbers, got dtype object"),
    ('ab', r"bias: expected numbers, got dtype <U2"),
])
def test_load_state_dict_checks_every_value_before_it_copies_any(bad, message):
    m = nn.Linear(3, 2)
    before = m.weight.data.copy()
    with pytest.raises(ValueError, match=rf"load_state_dict \(Linear\): {message}"):
        m.load_state_dict({'weight': np.zeros((2, 3)), 'bias': bad})
    np.testing.assert_array_equal(m.weight.data, before)  # was: weight already overwritten


@requires_torch
def test_load_state_dict_reads_torch_tensors_and_names_one_it_cannot_read():
    m = nn.Linear(3, 2)
    m.load_state_dict(torch.nn.Linear(3, 2).state_dict())
    before = m.weight.data.copy()
    with pytest.raises(ValueError, match=r"bias: cannot read a torch.Tensor as an array"):
        m.load_state_dict({'weight': torch.zeros(2, 3),
                           'bias': torch.zeros(2, requires_grad=True)})
    np.testing.assert_array_equal(m.weight.data, before)


def test_sequential_index_out_of_range_names_the_index_and_the_length():
    s = nn.Sequential(nn.ReLU(), nn.Tanh())
    for index in (2, -3):
        with pytest.raises(IndexError, match=rf"Sequential: index {index} is out of range for "
                                             rf"2 modules"):
            s[index]
    with pytest.raises(TypeError, match=r"Sequential: index must be an int or a slice, got "
                                        r"str '0'"):
        s['0']


@requires_torch
def test_a_slice_of_a_sequential_keeps_the_names_as_in_pytorch():
    s = nn.Sequential(nn.ReLU(), nn.Linear(2, 2), nn.Linear(2, 2))
    t = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert list(s[1:].state_dict()) == list(t[1:].state_dict()) == \
        ['1.weight', '1.bias', '2.weight', '2.bias']


def test_sequential_append_wants_a_module():
    with pytest.raises(TypeError, match=r"Sequential.append: expected a Module, got int"):
        nn.Sequential().append(3)  # was: a plain attribute, the Sequential still empty


@pytest.mark.parametrize('mode', ['eval', None, 1])
def test_train_mode_is_true_or_false(mode):
    with pytest.raises(ValueError, match=r"Linear.train: mode must be True or False"):
        nn.Linear(2, 2).train(mode)  # was: train('eval') meant training


@pytest.mark.parametrize('method', ['apply', 'register_forward_hook',
                                    'register_forward_pre_hook'])
def test_module_callbacks_must_be_callable(method):
    with pytest.raises(TypeError, match=rf"Linear.{method}: expected a callable, got int 3"):
        getattr(nn.Linear(2, 2), method)(3)


@requires_torch
def test_zero_grad_set_to_none_false_zeroes_the_gradients_as_in_pytorch():
    m = nn.Linear(2, 2)
    m(f64(1, 2).float()).sum().backward()
    m.zero_grad(set_to_none=False)
    assert m.weight.grad.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    m.zero_grad()
    assert m.weight.grad is None


@pytest.mark.parametrize('arg, message', [
    (np.int64, r"Linear.to: only floating-point dtypes, got int64"),
    (3, r"Linear.to: expected a device \('cpu', 'cuda'\) or a dtype, got 3"),
])
def test_module_to_refuses_a_dtype_its_parameters_cannot_have(arg, message):
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=message):
        m.to(arg)  # int64 was: integer parameters that require grad
    assert m.weight.dtype == np.float32


def test_module_to_none_changes_nothing_as_in_pytorch():
    m = nn.Linear(2, 2)
    assert m.to(None) is m and m.weight.dtype == np.float32  # was: float64


@pytest.mark.parametrize('model, shape, error, message', [
    (3, (1, 3), TypeError, r"summary: expected a Module, got int"),
    ('linear', 'abc', TypeError, r"summary: input_shape must be a tuple of ints"),
    ('linear', (-1, 3), ValueError, r"summary: input_shape must not be negative"),
])
def test_summary_refuses_what_is_not_a_model_or_a_shape(model, shape, error, message):
    model = nn.Sequential(nn.Linear(3, 2)) if model == 'linear' else model
    with pytest.raises(error, match=message):
        minidl.summary(model, shape, print_fn=lambda *a: None)


def test_summary_of_a_layer_with_several_outputs_lists_their_shapes():
    class Both(nn.Module):
        def forward(self, x):
            return x * 2, x.sum()

    rows = minidl.summary(Both(), (1, 3), print_fn=lambda *a: None)
    assert rows[0]['output_shape'] == ((1, 3), ())  # was: AttributeError on tuple.shape


# ----------------------------------------------------------------------------- init
@pytest.mark.parametrize('fn', [init.normal_, init.uniform_, init.zeros_, init.kaiming_normal_,
                                init.xavier_uniform_, init.dirac_])
def test_init_functions_want_a_tensor(fn):
    with pytest.raises(TypeError, match=rf"{fn.__name__}: expected a Tensor \(e.g. a "
                                        rf"Parameter\), got ndarray"):
        fn(np.zeros((2, 3, 3)))


@requires_torch
@pytest.mark.parametrize('name', ['normal_', 'uniform_', 'kaiming_uniform_', 'xavier_normal_'])
def test_random_init_of_an_integer_tensor_is_refused_as_in_pytorch(name):
    with pytest.raises(NotImplementedError):
        getattr(torch.nn.init, name)(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match=rf"{name}: expected a floating-point tensor, got int64"):
        getattr(init, name)(minidl.tensor(np.zeros((2, 3), np.int64)))


@requires_torch
@pytest.mark.parametrize('name', ['selu', 'conv1d', 'conv3d', 'conv_transpose2d'])
def test_calculate_gain_knows_pytorchs_nonlinearities(name):
    assert init.calculate_gain(name) == torch.nn.init.calculate_gain(name)


@pytest.mark.parametrize('param', ['a', True])
def test_calculate_gain_slope_must_be_a_number(param):
    with pytest.raises(ValueError, match=r"calculate_gain: param \(negative_slope\) must be "
                                         r"a number"):
        init.calculate_gain('leaky_relu', param)


@pytest.mark.parametrize('call, message', [
    (lambda w: init.uniform_(w, 1.0, 0.0), r"uniform_: expected finite bounds a <= b, got "
                                           r"a=1.0, b=0.0"),
    (lambda w: init.uniform_(w, -np.inf, np.inf), r"uniform_: expected finite bounds"),
    (lambda w: init.xavier_uniform_(w, gain=np.inf), r"xavier_uniform_: gain must be a number "
                                                     r"in \[0, inf\)"),
    (lambda w: init.xavier_normal_(w, gain=-1), r"xavier_normal_: gain must be a number"),
    (lambda w: init.xavier_uniform_(w, gain='a'), r"xavier_uniform_: gain must be a number"),
])
def test_bounds_and_gains_that_would_fill_nan_or_nonsense_are_refused(call, message):
    w = minidl.tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=message):
        call(w)  # a > b filled (b, a]; an infinite bound or gain filled NaN
    assert not w.numpy().any()


@pytest.mark.parametrize('value, error, message', [
    (None, TypeError, r"constant_: value must be a number, got None"),
    ('a', TypeError, r"constant_: value must be a number, got 'a'"),
    (np.ones(3), TypeError, r"constant_: value must be a number, got array"),
    (1e40, ValueError, r"constant_: 1e\+40 does not fit a float32 tensor"),
])
def test_constant_fills_with_a_number_the_tensor_holds(value, error, message):
    w = minidl.tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(error, match=message):
        init.constant_(w, value)  # None filled NaN, 1e40 inf, an array broadcast
    assert not w.numpy().any()


@requires_torch
def test_constant_takes_what_pytorch_takes():
    w = minidl.tensor(np.zeros(3, np.int64))
    tw = torch.zeros(3, dtype=torch.int64)
    assert init.constant_(w, 2.7).tolist() == torch.nn.init.constant_(tw, 2.7).tolist()
    assert np.isnan(init.constant_(f64(2), float('nan')).numpy()).all()


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('path', [None, 3, 'file object'])
def test_save_and_load_want_a_path(tmp_path, path):
    path = open(tmp_path / 'f', 'wb') if path == 'file object' else path
    with pytest.raises(TypeError, match=r"save: expected a file path \(str, bytes or "
                                        r"os.PathLike\), got"):
        minidl.save({'a': 1}, path)
    with pytest.raises(TypeError, match=r"load: expected a file path"):
        minidl.load(path)


def test_save_to_a_directory_names_it_and_writes_nothing(tmp_path):
    (tmp_path / 'd').mkdir()
    with pytest.raises(IsADirectoryError, match=r"save: is a directory, not a file"):
        minidl.save({'a': np.ones(3)}, tmp_path / 'd')
    assert sorted(os.listdir(tmp_path)) == ['d'] and os.listdir(tmp_path / 'd') == []


def test_save_under_a_file_or_to_an_empty_name_is_named(tmp_path):
    minidl.save({'a': 1}, tmp_path / 'c')
    with pytest.raises(NotADirectoryError, match=r"save: .*c' is a file, not a directory"):
        minidl.save({'a': 2}, tmp_path / 'c' / 'd')
    with pytest.raises(FileNotFoundError, match=r"save: empty file name"):
        minidl.save({'a': 2}, '')
    assert minidl.load(tmp_path / 'c') == {'a': 1}


def test_load_of_a_directory_names_load(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"load: is a directory, not a checkpoint file"):
        minidl.load(tmp_path)


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason="no named pipes here")
def test_load_of_a_named_pipe_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / 'pipe')
    with pytest.raises(CheckpointError, match=r"not a regular file"):
        minidl.load(tmp_path / 'pipe')  # was: open() waited for a writer, forever


def nested(depth, wrap):
    return functools.reduce(lambda inner, _: wrap(inner), range(depth), 1)


@pytest.mark.parametrize('wrap', [lambda x: [x], lambda x: {'k': x}], ids=['lists', 'dicts'])
def test_save_writes_only_what_load_reads_back_however_deep(tmp_path, wrap):
    minidl.save(nested(100, wrap), tmp_path / 'c')
    assert minidl.load(tmp_path / 'c') == nested(100, wrap)
    for depth in (101, 496, 5000):  # 496 lists saved into a file load refused; 5000 was a
        # RecursionError
        with pytest.raises(ValueError, match=r"save: more than 100 dicts, lists or tuples "
                                             r"inside one another"):
            minidl.save(nested(depth, wrap), tmp_path / 'c')
    assert minidl.load(tmp_path / 'c') == nested(100, wrap)  # the old file is intact


@requires_torch
def test_a_torch_tensor_in_a_checkpoint_is_named_as_torchs(tmp_path):
    with pytest.raises(TypeError, match=r"save: cannot store object of type torch.Tensor at "
                                        r"\['w'\]"):
        minidl.save({'w': torch.ones(2)}, tmp_path / 'c')


@requires_torch
def test_a_file_written_by_torch_save_is_not_a_checkpoint(tmp_path):
    torch.save({'w': torch.ones(2)}, tmp_path / 't.pt')
    with pytest.raises(CheckpointError, match=r"is not a valid minidl checkpoint \(entry "
                                              r"'minidl_meta' is missing\)"):
        minidl.load(tmp_path / 't.pt')


# ----------------------------------------------------------------------------- data
def test_a_negative_loader_seed_is_refused_when_the_loader_is_made():
    with pytest.raises(ValueError, match=r"DataLoader: seed must be >= 0"):
        DataLoader(Images(), shuffle=True, seed=-1)  # was: NumPy's error at the first batch
    with pytest.raises(ValueError, match=r"DataLoader: epoch must be an int >= 0, got -1"):
        DataLoader(Images()).rng(-1)


@pytest.mark.parametrize('option', ['shuffle', 'drop_last'])
def test_loader_flags_are_true_or_false(option):
    with pytest.raises(TypeError, match=rf"DataLoader: {option} must be True or False, got "
                                        rf"'no'"):
        DataLoader(Images(), **{option: 'no'})  # was: 'no' meant True


def test_loader_images_must_be_an_array():
    with pytest.raises(TypeError, match=r"DataLoader: the dataset's images must be an array "
                                        r"\(N, C, H, W\), got a list"):
        DataLoader(Images(images=np.zeros((5, 1, 2, 2), np.uint8).tolist()))


@pytest.mark.parametrize('result', [None, [[1.0]]])
def test_a_transform_that_returns_no_array_is_named(result):
    loader = DataLoader(Images(), transform=lambda x, rng: result)
    with pytest.raises(TypeError, match=r"DataLoader: the transform .*<lambda> returned"):
        list(loader)


def test_a_loader_iterates_every_epoch_and_an_empty_dataset_gives_no_batch():
    loader = DataLoader(Images(5), batch_size=2)
    assert [[y.tolist() for _, y in loader] for _ in range(2)] == [[[0, 1], [2, 0], [1]]] * 2
    assert list(DataLoader(Images(0), batch_size=2, drop_last=True)) == []


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    import fakedata
    monkeypatch.delenv('MINIDL_DATA', raising=False)
    fakedata.write_cifar(tmp_path)
    return tmp_path


def test_a_set_of_classes_is_refused_since_its_order_would_decide_the_labels(cifar_root):
    with pytest.raises(TypeError, match=r"CIFAR10: classes must be in order \(a list or "
                                        r"tuple: the first is label 0\), got a set"):
        CIFAR10(root=cifar_root, download=False, classes={'ship', 'airplane'})
    ds = CIFAR10(root=cifar_root, download=False, classes=['ship', 'airplane'])
    assert ds.classes == ('ship', 'airplane')


@pytest.mark.parametrize('option', ['train', 'download', 'verify'])
def test_dataset_flags_are_true_or_false(cifar_root, option):
    with pytest.raises(TypeError, match=rf"CIFAR10: {option} must be True or False, got 'no'"):
        CIFAR10(root=cifar_root, **{'download': False, option: 'no'})  # train='no' read train


def test_dataset_root_and_index_errors_name_the_dataset(cifar_root):
    with pytest.raises(TypeError, match=r"CIFAR10: root must be a folder path"):
        CIFAR10(root=3, download=False)
    ds = CIFAR10(root=cifar_root, download=False)
    with pytest.raises(IndexError, match=r"CIFAR10: index 20 is out of range for 20 images"):
        ds[20]
    with pytest.raises(TypeError, match=r"CIFAR10: index must be an int, got float 1.0"):
        ds[1.0]
    assert ds[-1][1] == ds.labels[-1]


@pytest.mark.parametrize('transform', [T.RandomCrop(2, padding=1), T.RandomHorizontalFlip(),
                                       T.Lighting(0.1)])
@pytest.mark.parametrize('rng', [None, 0])
def test_a_random_transform_wants_a_numpy_generator(transform, rng):
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(TypeError, match=rf"{type(transform).__name__}: rng must be a "
                                        rf"numpy.random.Generator"):
        transform(x, rng)  # was: AttributeError: 'NoneType' object has no attribute ...


@pytest.mark.parametrize('make, error, message', [
    (lambda: T.RandomCrop(4, padding='a'), TypeError, r"RandomCrop: padding must be an int "
                                                      r">= 0, got 'a'"),
    (lambda: T.RandomCrop(4, padding=None), TypeError, r"RandomCrop: padding must be an int"),
    (lambda: T.RandomCrop(4, padding=float('inf')), TypeError, r"RandomCrop: padding must"),
    (lambda: T.RandomHorizontalFlip('a'), TypeError, r"RandomHorizontalFlip: p must be a "
                                                     r"number in \[0, 1\], got 'a'"),
    (lambda: T.Normalize(None, None), ValueError, r"Normalize: mean must be finite numbers, "
                                                  r"got None"),
    (lambda: T.Normalize([0.5, float('nan')], [1, 1]), ValueError,
     r"Normalize: mean must be finite numbers"),
    (lambda: T.Normalize([0.5], [float('inf')]), ValueError, r"Normalize: std must be finite"),
    (lambda: T.Normalize([], []), ValueError, r"Normalize: mean must be finite numbers, got "
                                              r"\[\]"),
    (lambda: T.Normalize('abc', [1]), ValueError, r"Normalize: mean must be numbers"),
    (lambda: T.Lighting(float('nan')), ValueError, r"Lighting: std must be a number"),
    (lambda: T.Lighting('a'), TypeError, r"Lighting: std must be a number"),
    (lambda: T.Lighting(0.1, eigval=[float('nan')] * 3), ValueError,
     r"Lighting: eigval must be finite numbers"),
    (lambda: T.Compose(None), TypeError, r"Compose: expected a list of transforms, got "
                                         r"NoneType"),
    (lambda: T.flip_half_(np.zeros((2, 1, 2, 2)), seed=-1), ValueError,
     r"flip_half_: seed must be an int >= 0, got -1"),
    (lambda: T.AlternatingFlip().set_epoch(1.7), TypeError,
     r"AlternatingFlip.set_epoch: epoch must be an int >= 0, got 1.7"),
    (lambda: T.channel_stats(np.zeros((2, 3, 2, 2), np.uint8), sample=-1), ValueError,
     r"channel_stats: sample must be an int >= 1, got -1"),
    (lambda: T.channel_stats(np.zeros((2, 3, 2, 2), np.uint8), sample=1.5), TypeError,
     r"channel_stats: sample must be an int >= 1, got 1.5"),
])
def test_transform_options_are_checked_when_the_transform_is_made(make, error, message):
    with pytest.raises(error, match=message):
        make()  # NaN or None statistics used to give NaN images


# ----------------------------------------------------------------------------- random
@requires_torch
def test_manual_seed_takes_a_negative_seed_as_pytorch():
    torch.manual_seed(-1)
    assert minidl.manual_seed(-1) == torch.initial_seed() == 2 ** 64 - 1  # was NumPy's error
    assert minidl.manual_seed(-5) == 2 ** 64 - 5


@pytest.mark.parametrize('seed, error', [(None, TypeError), ('abc', ValueError),
                                         (float('nan'), ValueError)])
def test_manual_seed_names_itself_for_what_is_not_an_int(seed, error):
    with pytest.raises(error, match=r"manual_seed: the seed must be an int"):
        minidl.manual_seed(seed)


@pytest.mark.parametrize('state, error', [(None, TypeError), ({}, ValueError)])
def test_set_rng_state_names_itself(state, error):
    with pytest.raises(error, match=r"set_rng_state: expected the dict get_rng_state\(\) "
                                    r"returned"):
        minidl.random.set_rng_state(state)


# ----------------------------------------------------------------------------- gradcheck
class TimesThreeBackward(minidl.Function):
    """y = 2x with a wrong backward (3 gy)."""

    def forward(self, x):
        return x * 2

    def backward(self, gy):
        return gy * 3


def wrong(x):
    return TimesThreeBackward()(x)


@pytest.mark.parametrize('option', [dict(atol=float('nan')), dict(rtol=float('nan')),
                                    dict(atol=-1.0), dict(n_random=0, full_jacobian_max=0)])
def test_gradcheck_options_that_would_pass_a_wrong_gradient_are_refused(option):
    name = next(iter(option))
    with pytest.raises(ValueError, match=rf"gradcheck: {name} must be"):
        minidl.gradcheck(wrong, [f64(3, requires_grad=True)], **option)  # was: True


@pytest.mark.parametrize('check', [minidl.gradcheck, minidl.gradgradcheck])
@pytest.mark.parametrize('kwargs, error, message', [
    (dict(eps=0), ValueError, r"eps must be a finite non-zero number, got 0"),
    (dict(eps='a'), TypeError, r"eps must be a number, got 'a'"),
    (dict(fn=3), TypeError, r"fn must be callable, got int"),
    (dict(inputs=None), TypeError, r"inputs must be a Tensor or a tuple/list of them, got "
                                   r"NoneType"),
    (dict(fn=lambda x: ()), ValueError, r"fn returned no outputs"),
])
def test_gradient_checks_refuse_bad_arguments_by_name(check, kwargs, error, message):
    arguments = dict(fn=F.tanh, inputs=[f64(3, requires_grad=True)])
    arguments.update(kwargs)
    with pytest.raises(error, match=rf"{check.__name__}: {message}"):
        check(arguments.pop('fn'), arguments.pop('inputs'), **arguments)


@pytest.mark.parametrize('grad_outputs', [[f64(5, requires_grad=True)],
                                          [f64(3, requires_grad=True)] * 2])
def test_gradgradcheck_wants_one_grad_output_per_output_of_its_shape(grad_outputs):
    with pytest.raises(ValueError, match=r"gradgradcheck: grad_outputs have shapes"):
        minidl.gradgradcheck(F.tanh, [f64(3, requires_grad=True)], grad_outputs=grad_outputs)


# ----------------------------------------------------------------------------- graph
def test_to_dot_wants_a_tensor_and_names_parameters_from_named_parameters():
    with pytest.raises(TypeError, match=r"to_dot: expected a Tensor, got ndarray"):
        graph.to_dot(np.ones(3))
    model = nn.Linear(2, 1)
    loss = model(f64(1, 2).float()).sum()
    dot = graph.to_dot(loss, params=model.named_parameters(), title=7)  # pairs, any title
    assert 'weight\\n(1, 2) float32' in dot and 'label="7"' in dot
    with pytest.raises(TypeError, match=r"to_dot: params must be a dict \{name: Tensor\} or "
                                        r"\(name, Tensor\) pairs, got list"):
        graph.to_dot(loss, params=[model.weight])


def test_graph_write_wants_dot_text_and_a_path(tmp_path):
    with pytest.raises(TypeError, match=r"graph.write: dot must be the str to_dot returns"):
        graph.write(3, tmp_path / 'g.dot')
    written, _ = graph.write('digraph {}\n', os.fsencode(tmp_path / 'g.dot'))
    assert open(written).read() == 'digraph {}\n'
