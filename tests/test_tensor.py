"""Specification of Tensor and the autograd engine; what involves the device's arrays
(values, gradients, moving between devices) on every device."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from helpers import CUDA, rand


# ----------------------------------------------------------------------------- construction
def test_python_numbers_and_lists_become_float32():
    assert minidl.tensor(2.5).dtype == np.float32
    assert minidl.tensor([1, 2, 3]).dtype == np.float32
    assert minidl.Tensor([[1.0, 2.0]]).shape == (1, 2)


def test_arrays_keep_their_dtype():
    assert minidl.Tensor(np.zeros(3)).dtype == np.float64
    assert minidl.Tensor(np.zeros(3, np.int64)).dtype == np.int64
    assert minidl.tensor([1, 2], dtype=np.int32).dtype == np.int32


def test_tensor_copies_but_Tensor_wraps():
    a = np.zeros(3)
    assert minidl.Tensor(a).data is a
    t = minidl.tensor(a)
    a[0] = 5
    assert t.data[0] == 0


def test_tensor_is_made_on_the_requested_device(device):
    x = minidl.tensor(np.arange(6.0).reshape(2, 3), device=device)
    assert (x.device, x.dtype, x.shape) == (device, np.float64, (2, 3))
    assert isinstance(x.numpy(), np.ndarray)  # copied from the GPU
    assert x[1, 2].item() == 5.0 and x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert ("device='cuda'" in repr(x)) == (device == 'cuda')


def test_attributes():
    x = minidl.Tensor(np.arange(6.0).reshape(2, 3))
    assert (x.shape, x.ndim, x.dtype, x.device) == ((2, 3), 2, np.float64, 'cpu')
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6 and len(x) == 2
    assert x[1, 2].item() == 5.0 and isinstance(x.numpy(), np.ndarray)
    assert x.T.shape == (3, 2) and x.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"item.*\(2,\)"):
        minidl.Tensor(np.zeros(2)).item()


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match=r"requires_grad.*int64.*\(3,\)"):
        minidl.Tensor(np.zeros(3, np.int64), requires_grad=True)


def test_data_and_grad_can_be_assigned():
    x = rand(2, 2)
    x.data = np.ones((2, 2))
    x.grad = np.full((2, 2), 3.0)
    assert isinstance(x.grad, minidl.Tensor) and x.grad.data[0, 0] == 3.0
    with pytest.raises(ValueError, match="shape"):
        x.grad = np.ones(3)


def test_detach_shares_data_and_leaves_graph():
    x = rand(3)
    y = (x * 2).detach()
    assert y.grad_fn is None and not y.requires_grad


def test_to_same_device_and_dtype(device):
    x = rand(2, device=device)
    assert x.to(device) is x
    assert x.to(np.float32).dtype == np.float32 and x.to(np.float32).device == device
    with pytest.raises(ValueError, match="unknown device"):
        x.to('tpu')


def test_to_moves_data_and_gradients_flow_back(device):
    x = minidl.tensor(np.arange(3.0), requires_grad=True)
    y = x.to(device)
    assert y.device == device
    (y * 2).to('cpu').sum().backward()
    assert x.grad.device == 'cpu'
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


def test_to_cpu_and_back_keeps_the_gradient_on_the_device(device):
    x = rand(3, device=device)
    y = x.to('cpu')
    assert y.device == 'cpu'
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    (y * 3).to(device).sum().backward()
    assert x.grad.device == device and x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3, 3])


# ----------------------------------------------------------------------------- backward basics
def test_gradient_of_a_scalar_function(device):
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    (x * x).sum().backward()
    assert x.grad.device == device and x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2, 4, 6])


def test_gradients_accumulate_across_uses(device):
    x = minidl.tensor(3.0, requires_grad=True, device=device)
    y = x * x + x * 2 + x  # dy/dx = 2x + 3
    y.backward()
    assert x.grad.item() == 9.0


def test_gradients_accumulate_across_backward_calls(device):
    x = minidl.tensor(2.0, requires_grad=True, device=device)
    (x * 3).backward()
    (x * 4).backward()
    assert x.grad.item() == 7.0 and x.grad.device == device


def test_broadcasting_gradients_sum_over_broadcast_axes(device):
    a, b = rand(4, 1, 3, device=device), rand(5, 1, seed=1, device=device)
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full((4, 1, 3), b.numpy().sum()), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), np.full((5, 1), a.numpy().sum()), rtol=1e-12)


def test_backward_on_non_scalar_needs_grad(device):
    y = rand(2, 3, device=device) * 2
    with pytest.raises(ValueError, match=r"backward.*\(2, 3\)"):
        y.backward()
    y.backward(minidl.tensor(np.ones((2, 3)), device=device))


def test_backward_rejects_wrong_grad_shape():
    y = rand(2, 3) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(minidl.Tensor(np.ones(3)))


def test_backward_without_graph_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor(1.0).backward()


def test_graph_is_freed_unless_retained(device):
    x = rand(3, device=device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_deep_graph_has_no_recursion_limit():
    x = minidl.tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.001
    y.backward()
    assert abs(x.grad.item() / 1.001 ** 5000 - 1) < 1e-9


def test_no_grad_records_nothing():
    x = rand(2)
    with minidl.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    assert minidl.is_grad_enabled()


def test_leaf_grads_never_alias_each_other_or_the_seed(device):
    a, b = rand(3, device=device), rand(3, seed=1, device=device)
    seed = minidl.tensor(np.ones(3), device=device)
    (a + b).backward(seed)
    a.grad.data[0] = 100.0
    assert b.grad.numpy()[0] == 1.0 and seed.numpy()[0] == 1.0


def test_mixed_float_dtypes_give_grads_in_each_inputs_dtype(device):
    a = minidl.tensor(np.ones(2, np.float32), requires_grad=True, device=device)
    b = minidl.tensor(np.ones(2, np.float64), requires_grad=True, device=device)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert a.grad.device == b.grad.device == device


def test_python_scalars_do_not_promote_float32(device):
    x = minidl.tensor(np.ones(2, np.float32), requires_grad=True, device=device)
    y = (2.0 * x + 1) / 3 - 0.5
    assert y.dtype == np.float32 and y.device == device
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ----------------------------------------------------------------------------- hooks
def test_hook_sees_and_can_replace_the_gradient(device):
    x = rand(3, device=device)
    seen = []
    y = x * 2
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    x.register_hook(lambda g: g * 10)
    y.sum().backward()
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), np.full(3, 20.0))


def test_hook_handle_removes_the_hook():
    x = rand(2)
    handle = x.register_hook(lambda g: g * 0)
    handle.remove()
    x.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones(2))


def test_leaf_hook_is_called_once_with_the_total(device):
    x = rand(2, device=device)
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 2 + x * 3).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], np.full(2, 5.0))


def test_retain_grad_keeps_non_leaf_gradient(device):
    x = rand(2, device=device)
    y = x * 3
    y.retain_grad()
    z = x * 3
    (y * y + z).sum().backward()
    assert y.grad.device == device
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.numpy())
    assert z.grad is None


# ----------------------------------------------------------------------------- higher order
def test_create_graph_gives_differentiable_gradients(device):
    x = minidl.tensor(2.0, dtype=np.float64, requires_grad=True, device=device)
    y = x ** 3
    (g,) = minidl.grad(y, [x], create_graph=True)  # 3x^2 = 12
    (gg,) = minidl.grad(g, [x], create_graph=True)  # 6x = 12
    (ggg,) = minidl.grad(gg, [x])  # 6
    assert (g.item(), gg.item(), ggg.item()) == (12.0, 12.0, 6.0)


def test_backward_with_create_graph_then_backward_again(device):
    x = minidl.tensor(1.5, dtype=np.float64, requires_grad=True, device=device)
    y = F.tanh(x)
    y.backward(create_graph=True)
    g = x.grad
    x.grad = None
    g.backward()
    t = np.tanh(1.5)
    assert abs(x.grad.item() - (-2 * t * (1 - t * t))) < 1e-12


def test_grad_leaves_dot_grad_alone_and_reports_unused(device):
    x, z = rand(2, device=device), rand(2, seed=1, device=device)
    y = (x * x).sum()
    (gx,) = minidl.grad(y, [x], retain_graph=True)
    assert x.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        minidl.grad(y, [z], retain_graph=True)
    assert minidl.grad(y, [z], allow_unused=True) == (None,)


# ----------------------------------------------------------------------------- user ops
class Cube(minidl.Function):
    """y = x^3, dL/dx = 3 x^2 gy."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        (x,) = self.inputs
        return 3 * x * x * gy


class SplitHalves(minidl.Function):
    def forward(self, x):
        return x[:2].copy(), x[2:].copy()

    def backward(self, ga, gb):
        return F.concat([ga, gb])


def test_user_defined_function_and_its_second_derivative(device):
    x = rand(4, device=device)
    assert minidl.gradcheck(lambda t: Cube()(t), [x])
    assert minidl.gradgradcheck(lambda t: Cube()(t), [x])


def test_multi_output_function_with_an_unused_output(device):
    x = rand(5, device=device)
    a, b = SplitHalves()(x)
    (a * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 0, 0, 0])


def test_backward_returning_wrong_shape_is_named():
    class Broken(minidl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum()

    with pytest.raises(ValueError, match=r"Broken.backward.*\(\).*\(3,\)"):
        Broken()(rand(3)).sum().backward()


def test_mixed_devices_are_an_error(monkeypatch):
    a, b = rand(2), rand(2)
    monkeypatch.setattr(type(b), 'device', property(
        lambda self: 'cuda' if self is b else 'cpu'))
    with pytest.raises(ValueError, match=r"Add: all inputs must be on one device.*cuda"):
        a + b


@pytest.mark.parametrize('device', [CUDA])
def test_mixing_real_devices_is_an_error(device):
    a = minidl.tensor(np.ones(2))
    b = minidl.tensor(np.ones(2), device=device)
    with pytest.raises(ValueError, match="one device.*cpu.*cuda"):
        a + b
    with pytest.raises(ValueError, match="one device.*cuda.*cpu"):
        F.matmul(b, a)


def test_leaf_grads_that_are_views_of_one_array_do_not_alias(device):
    class Split(minidl.Function):  # both gradients are views of one fresh array
        def forward(self, a, b):
            return a + b

        def backward(self, gy):
            both = F.concat([gy, gy]).reshape(2, -1)
            return both[0], both[1]

    a, b = rand(3, device=device), rand(3, seed=1, device=device)
    Split()(a, b).sum().backward()
    a.grad.data[0] = 100.0
    assert b.grad.numpy()[0] == 1.0


# ------------------------------------------------------------------ what the graph keeps
def _pool_after(fn, x):
    h = fn(x)
    return h, F.max_pool2d(h, 2)


def test_an_input_that_backward_does_not_read_is_freed_after_forward():
    import weakref
    x = rand(2, 3, 4, 4)
    h, y = _pool_after(lambda t: t * 3.0, x)  # max-pool reads only h's shape in backward
    data = weakref.ref(h.data.base if h.data.base is not None else h.data)
    del h
    assert data() is None  # the graph kept a record of h, not its array
    y.sum().backward()
    expected = minidl.tensor(x.data, requires_grad=True)
    F.max_pool2d(expected * 3.0, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, expected.grad.data)


def test_hooks_and_retain_grad_still_see_a_kept_tensor_behind_a_record():
    x = rand(1, 2, 4, 4)
    h, y = _pool_after(lambda t: t * 2.0, x)
    h.retain_grad()
    seen = []
    h.register_hook(lambda g: seen.append(g.shape))
    (y * 5.0).sum().backward()
    assert seen == [(1, 2, 4, 4)]
    assert float(h.grad.data.sum()) == pytest.approx(5.0 * 2 * 2 * 2)  # one per window


def test_outputs_read_by_their_own_backward_stay_alive_behind_a_pool():
    x = rand(1, 2, 4, 4)
    for act in (F.tanh, F.sigmoid, F.exp):
        assert minidl.gradcheck(lambda t: F.max_pool2d(act(t), 2), [x])
        assert minidl.gradgradcheck(lambda t: F.max_pool2d(act(t), 2), [x])


def test_retained_graph_through_a_record_gives_the_same_gradient_twice():
    x = rand(1, 1, 4, 4)
    _, y = _pool_after(lambda t: t * t, x)
    y.sum().backward(retain_graph=True)
    first = x.grad.data.copy()
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * first)


def test_a_hook_runs_even_when_only_a_record_of_its_tensor_is_kept():
    x = rand(1, 2, 4, 4)
    h, y = _pool_after(lambda t: t * 2.0, x)
    seen = []
    h.register_hook(lambda g: seen.append(float(g.data.sum())))
    del h
    y.sum().backward()
    assert seen == [8.0]  # one gradient of 1 per 2x2 window: 2 channels x 4 windows
