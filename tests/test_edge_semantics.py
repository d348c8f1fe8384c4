"""Edge cases where minidl follows PyTorch's rules, found by running PyTorch's own test samples
through minidl (tests/test_torch_samples.py, which needs PyTorch). These say the same
without PyTorch."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn

NAN, INF = float('nan'), float('inf')


def grad_of(fn, x, gy=None, **kw):
    x = minidl.tensor(np.asarray(x, np.float64), requires_grad=True)
    y = fn(x, **kw)
    y.backward(minidl.tensor(np.ones(y.shape) if gy is None else np.asarray(gy, np.float64)))
    return x.grad.numpy()


def test_relu_lets_the_gradient_through_a_nan_input_and_zeroes_it_where_x_is_not_positive():
    g = grad_of(F.relu, [NAN, 2.0, 0.0, -1.0], gy=[3.0, 3.0, INF, INF])
    np.testing.assert_array_equal(g, [3.0, 3.0, 0.0, 0.0])  # inf * 0 would be NaN


def test_abs_gradient_is_the_sign_and_zero_at_nan():
    np.testing.assert_array_equal(grad_of(F.absolute, [NAN, -2.0, 0.0, 3.0]), [0, -1, 0, 1])


def test_pow_gradient_wrt_the_base_is_zero_for_exponent_zero_even_at_zero_nan_inf():
    np.testing.assert_array_equal(grad_of(lambda x: x ** 0.0, [0.0, NAN, INF, 2.0]), [0] * 4)


def test_pow_gradient_wrt_the_exponent_is_zero_at_base_zero_for_exponent_at_least_zero():
    a = minidl.tensor(np.zeros(3))
    b = minidl.tensor(np.array([0.0, 1.0, 2.5]), requires_grad=True)
    (a ** b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [0, 0, 0])  # not 0 * log 0 = NaN


@pytest.mark.parametrize('pool', [F.max_pool2d, F.avg_pool2d])
def test_pooling_reads_one_int_tuples_and_an_empty_stride_as_pytorch(pool):
    x = minidl.tensor(np.random.default_rng(0).standard_normal((1, 2, 7, 7)))
    want = pool(x, 3, stride=3, padding=1).numpy()
    np.testing.assert_array_equal(pool(x, (3,), stride=(), padding=(1,)).numpy(), want)
    assert nn.MaxPool2d((3,), (), (1,))(x).shape == (1, 2, 3, 3)


def test_conv2d_still_wants_an_int_or_a_pair_as_pytorch():
    with pytest.raises(ValueError, match=r"conv2d: padding must be an int or a pair"):
        F.conv2d(minidl.tensor(np.zeros((1, 1, 4, 4))), minidl.tensor(np.zeros((1, 1, 3, 3))),
                 padding=(1,))


def test_cross_entropy_of_unbatched_logits_is_a_batch_of_one():
    logits = np.random.default_rng(1).standard_normal(5)
    one = F.cross_entropy(minidl.tensor(logits[None]), np.array([3]), reduction='none')
    got = F.cross_entropy(minidl.tensor(logits), np.array(3), reduction='none')
    assert got.shape == ()
    np.testing.assert_allclose(got.numpy(), one.numpy()[0])
    probabilities = np.full(5, 0.2)
    np.testing.assert_allclose(F.cross_entropy(minidl.tensor(logits), probabilities).numpy(),
                               F.cross_entropy(minidl.tensor(logits[None]),
                                               probabilities[None]).numpy())


def test_lrn_of_a_5d_input_normalises_across_channels_as_its_3d_view():
    x = minidl.tensor(np.random.default_rng(2).standard_normal((2, 6, 3, 2, 2)),
                      requires_grad=True)
    flat = F.local_response_norm(x.reshape(2, 6, 12), 3, 0.1, 0.75, 1.0).reshape(2, 6, 3, 2, 2)
    np.testing.assert_allclose(F.local_response_norm(x, 3, 0.1, 0.75, 1.0).numpy(), flat.numpy())
    assert minidl.gradcheck(lambda t: F.local_response_norm(t, 3, 0.1, 0.75, 1.0), [x])


def test_batchnorm1d_takes_n_c_l_with_statistics_over_n_and_l():
    x = minidl.tensor(np.random.default_rng(3).standard_normal((4, 3, 5)))
    bn = nn.BatchNorm1d(3).double()
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.numpy().mean(axis=(0, 2)))


def test_batchnorm_bias_false_keeps_the_weight_alone():
    bn = nn.BatchNorm2d(3, bias=False)
    assert bn.weight is not None and bn.bias is None
    assert [name for name, _ in bn.named_parameters()] == ['weight']


def test_cross_entropy_loss_takes_class_weights_as_a_list():
    loss = nn.CrossEntropyLoss(weight=[1.0, 2.0, 0.5])
    assert loss.weight.dtype == np.float64 and loss.weight.shape == (3,)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: weight must be None or a 1-d"):
        nn.CrossEntropyLoss(weight=[[1.0]])


@pytest.mark.parametrize('label_smoothing', [0.0, 0.2])
def test_cross_entropy_with_probability_targets_is_twice_differentiable_in_both(label_smoothing):
    rng = np.random.default_rng(4)
    logits = minidl.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    q = minidl.tensor(rng.dirichlet(np.ones(4), size=3), requires_grad=True)
    weight = rng.random(4) + 0.5
    assert minidl.gradgradcheck(lambda x, t: F.cross_entropy(
        x, t, weight=weight, label_smoothing=label_smoothing), [logits, q])


@pytest.mark.parametrize('mode, widths, expected', [
    ('replicate', (-2, 1), [2, 3, 4, 4]),
    ('reflect', (-2, 1), [2, 3, 4, 3]),
    ('circular', (-2, 1), [2, 3, 4, 2]),     # crop first, then wrap what is left
    ('circular', (1, -2), [2, 0, 1, 2]),
])
def test_pad_with_negative_widths_crops_then_pads_as_pytorch(mode, widths, expected):
    x = minidl.tensor(np.arange(5.0).reshape(1, 1, 5), requires_grad=True)
    y = F.pad(x, widths, mode=mode)
    np.testing.assert_array_equal(y.numpy().ravel(), expected)
    y.sum().backward()  # each x element's gradient: how many outputs read it
    np.testing.assert_array_equal(x.grad.numpy().ravel(),
                                  np.bincount(np.array(expected, int), minlength=5))


def test_pytorch_names_dim_and_keepdim_are_taken_beside_axis_and_keepdims():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.sum(dim=1, keepdim=True).numpy(), [[3.0], [12.0]])
    np.testing.assert_array_equal(F.mean(x, dim=0).numpy(), [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(x.argmax(dim=1).numpy(), [2, 2])
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy(), F.softmax(x, 0).numpy())
    np.testing.assert_allclose(F.log_softmax(x, dim=1).numpy(), F.log_softmax(x, 1).numpy())
    assert F.cat([x, x], dim=1).shape == (2, 6)


def test_dim_and_axis_given_both_must_agree():
    x = minidl.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"sum: axis=0 and dim=1 disagree"):
        F.sum(x, 0, dim=1)
    with pytest.raises(ValueError, match=r"mean: keepdims=True and keepdim=False disagree"):
        F.mean(x, keepdims=True, keepdim=False)
    assert F.sum(x, 1, dim=1).shape == (2,)


@pytest.mark.parametrize('init, warns', [(nn.init.kaiming_normal_, True),
                                         (nn.init.kaiming_uniform_, True),
                                         (nn.init.xavier_uniform_, False),
                                         (nn.init.xavier_normal_, False)])
@pytest.mark.parametrize('shape', [(3, 0), (0, 3), (0, 0)])
def test_fan_based_inits_leave_a_zero_element_weight_alone_as_pytorch(init, warns, shape):
    w = nn.Parameter(np.zeros(shape, np.float32))
    if warns:  # PyTorch's kaiming inits warn, its xavier inits do not
        with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
            assert init(w) is w
    else:
        assert init(w) is w
    assert w.shape == shape


def test_an_empty_list_index_selects_no_rows_as_pytorch():
    x = minidl.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    y = x[[]]
    assert y.shape == (0, 4)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4)))
