"""dropout on every device: inverted scaling, identity in eval, reproducible, gradient =
mask."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import rand


def test_kept_units_are_scaled_and_dropped_ones_are_zero(device):
    x = minidl.tensor(np.ones((100, 100)), device=device)
    y = F.dropout(x, p=0.3)
    assert y.device == device
    y = y.numpy()
    assert set(np.unique(y)) <= {0.0, 1 / 0.7}
    assert abs((y == 0).mean() - 0.3) < 0.02  # 10,000 Bernoulli draws: std 0.0046


def test_expectation_is_preserved(device):
    y = F.dropout(minidl.tensor(np.ones(200_000), device=device), p=0.5).numpy()
    assert abs(y.mean() - 1.0) < 0.01


def test_identity_when_not_training_or_p_zero(device):
    x = rand(3, 4, device=device)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((3, 4)))


def test_reproducible_under_manual_seed(device):
    x = minidl.tensor(np.ones((8, 8), np.float32), device=device)
    minidl.manual_seed(123)
    a = F.dropout(x).numpy()
    minidl.manual_seed(123)
    b = F.dropout(x).numpy()
    c = F.dropout(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    assert a.dtype == np.float32


def test_gradient_is_the_same_scaled_mask(device):
    x = rand(5, 6, device=device)
    y = F.dropout(x, p=0.4)
    y.backward(minidl.tensor(np.ones((5, 6)), device=device))
    assert x.grad.device == device
    np.testing.assert_allclose(x.grad.numpy(), y.numpy() / x.numpy(), rtol=1e-12)


def test_gradcheck_and_gradgradcheck_with_a_fixed_mask(device):
    def fn(x):
        minidl.manual_seed(7)  # the same mask in every evaluation
        return F.dropout(x, p=0.3)
    assert minidl.gradcheck(fn, [rand(4, 5, device=device)])
    assert minidl.gradgradcheck(fn, [rand(4, 5, device=device)])


def test_p_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"dropout: p must be a number in \[0, 1\], got 1.5"):
        F.dropout(rand(2), p=1.5)
