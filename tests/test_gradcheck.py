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
