"""gradcheck / gradgradcheck as user-facing features."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import rand


class WrongSquare(minidl.Function):
    """y = x^2 with a deliberately wrong backward (gy * x instead of 2 gy x)."""

    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        return gy * self.inputs[0]


class WrongSecondDerivative(minidl.Function):
    """y = x^3; first derivative right as a number, but built from a detached x."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        return gy * minidl.Tensor(3 * self.inputs[0].data ** 2)


def test_passes_for_a_correct_op_with_a_large_output():
    x = rand(6, 7)  # 42 outputs: checked through random projections
    assert minidl.gradcheck(lambda t: F.tanh(t @ t.T), [x])


def test_reports_input_element_analytic_and_numeric_values():
    x = rand(2, 3)
    with pytest.raises(minidl.GradcheckError) as info:
        minidl.gradcheck(lambda a, b: a + WrongSquare()(b), [rand(2, 3, seed=5), x])
    message = str(info.value)
    assert 'input 1 (shape (2, 3))' in message and 'analytic' in message and 'numeric' in message


def test_returns_false_without_raising_when_asked():
    assert minidl.gradcheck(lambda t: WrongSquare()(t), [rand(3)], raise_exception=False) is False


def test_gradgradcheck_catches_a_non_differentiable_backward():
    x = rand(4)
    assert minidl.gradcheck(lambda t: WrongSecondDerivative()(t), [x])
    with pytest.raises(minidl.GradcheckError):
        minidl.gradgradcheck(lambda t: WrongSecondDerivative()(t), [x])


def test_checks_functions_with_several_outputs():
    x = rand(3)
    assert minidl.gradcheck(lambda t: (t * 2, F.exp(t)), [x])


def test_needs_float64_and_something_to_check():
    with pytest.raises(TypeError, match="float64"):
        minidl.gradcheck(lambda t: t * 2, [minidl.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="requires_grad"):
        minidl.gradcheck(lambda t: t * 2, [rand(2, requires_grad=False)])


def test_non_tensor_inputs_are_passed_through():
    target = np.array([1, 0])
    assert minidl.gradcheck(F.softmax_cross_entropy, [rand(2, 3), target])


def test_inputs_are_restored_after_the_check():
    x = rand(3, 3)
    before = x.numpy().copy()
    minidl.gradcheck(lambda t: t.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)


# ----------------------------------------------------------------------------- non-finite values
# (the ops under test warn about their NaN/inf; that is what these tests are about)
nonfinite = pytest.mark.filterwarnings('ignore::RuntimeWarning')


class NaNBackward(minidl.Function):
    """y = 2x with a backward that returns NaN."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        return gy * float('nan')


class InfBackward(minidl.Function):
    """y = 2x with a backward that returns +inf."""

    def forward(self, x):
        return 2 * x

    def backward(self, gy):
        return gy * float('inf')


class NaNSecondDerivative(minidl.Function):
    """y = x^2 with a right (finite) first derivative 2 gy x whose own backward is NaN."""

    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        return gy * 2 * NaNBackward()(self.inputs[0]) / 2


@nonfinite
@pytest.mark.parametrize('op, value', [(NaNBackward, 'analytic nan'), (InfBackward, 'analytic inf')])
def test_a_non_finite_analytic_gradient_fails_naming_input_element_and_values(op, value):
    with pytest.raises(minidl.GradcheckError) as info:
        minidl.gradcheck(lambda a, b: a + op()(b), [rand(3, seed=1), rand(2, 3)])
    message = str(info.value)
    assert 'not finite' in message and 'input 1 (shape (2, 3))' in message
    assert 'at index (0, 0)' in message and value in message and 'numeric 2' in message


@nonfinite
def test_a_non_finite_forward_output_fails_naming_the_output_element_and_value():
    x = minidl.tensor([1.0, 2.0, -1.0, 3.0], dtype=np.float64, requires_grad=True)
    with pytest.raises(minidl.GradcheckError, match=r'output 0 .* index \(2,\): nan'):
        minidl.gradcheck(lambda t: F.sqrt(t), [x])
    big = minidl.tensor([1.0, 800.0], dtype=np.float64, requires_grad=True)
    with pytest.raises(minidl.GradcheckError, match=r'output 1 .* index \(1,\): inf'):
        minidl.gradcheck(lambda t: (t * 2, F.exp(t)), [big])
    assert minidl.gradcheck(lambda t: F.sqrt(t), [x], raise_exception=False) is False


@nonfinite
def test_a_non_finite_numeric_gradient_fails_naming_input_element_and_values():
    x = minidl.tensor([1.0, 709.78], dtype=np.float64, requires_grad=True)  # exp(x+eps) = inf
    with pytest.raises(minidl.GradcheckError) as info:
        minidl.gradcheck(lambda t: F.exp(t).sum(), [x], eps=1e-2)
    message = str(info.value)
    assert 'not finite' in message and 'input 0' in message and 'index (1,)' in message
    assert 'numeric inf' in message


@nonfinite
def test_gradgradcheck_fails_on_a_nan_second_derivative():
    x = rand(3)
    assert minidl.gradcheck(lambda t: NaNSecondDerivative()(t), [x])
    with pytest.raises(minidl.GradcheckError, match=r'not finite.*analytic nan'):
        minidl.gradgradcheck(lambda t: NaNSecondDerivative()(t), [x])
