"""The channels-last memory layout (minidl/kernels/layout.py): an (N, C, H, W) tensor whose
memory is NHWC gives the same numbers, values and gradients, as the NCHW one in every op
that keeps the layout (convolution, pooling, GELU, ReLU; batch norm:
tests/test_batchnorm_channels_last.py), and hands the layout on."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.kernels import layout
from minidl.kernels import winograd as W

CL = minidl.channels_last


def nhwc_memory(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def run(fn, arrays, gy=None, channels_last=False):
    """fn's output and the gradients of sum(output * gy) for every input, the 4-D inputs
    laid out NHWC when asked."""
    ts = [minidl.Tensor(nhwc_memory(a) if channels_last and a.ndim == 4 else a,
                        requires_grad=True) for a in arrays]
    y = fn(*ts)
    gy = np.ones(y.shape) if gy is None else gy
    (y * minidl.tensor(gy)).sum().backward()
    return y, [t.grad.data for t in ts]


def assert_same_in_both_layouts(fn, arrays, tol=1e-12):
    rng = np.random.default_rng(7)
    y0, g0 = run(fn, arrays)
    gy = rng.standard_normal(y0.shape)
    y0, g0 = run(fn, arrays, gy)
    y1, g1 = run(fn, arrays, gy, channels_last=True)
    np.testing.assert_allclose(y1.data, y0.data, rtol=0, atol=tol)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol)
    return y1


# ----------------------------------------------------------------------------- the API
def test_contiguous_converts_and_keeps_values():
    x = minidl.tensor(np.arange(120.).reshape(2, 3, 4, 5))
    y = x.contiguous(memory_format=CL)
    assert y.is_contiguous(CL) and not y.is_contiguous()
    assert y.shape == x.shape and (y.data == x.data).all()
    assert y.contiguous(CL) is y and x.contiguous() is x
    back = y.contiguous()
    assert back.is_contiguous() and (back.data == x.data).all()


def test_contiguous_gradient_is_the_identity():
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 5)),
                      requires_grad=True)
    y = x.contiguous(memory_format=CL)
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)


def test_contiguous_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="contiguous: memory_format must be one of"):
        minidl.tensor(np.zeros((1, 2, 3, 3))).contiguous(memory_format='nhwc')
    with pytest.raises(ValueError, match=r"needs a 4-D .* got shape \(2, 3\)"):
        minidl.tensor(np.zeros((2, 3))).contiguous(memory_format=CL)


def test_a_one_channel_or_one_pixel_array_is_both():
    for shape in ((2, 1, 3, 3), (2, 5, 1, 1)):
        x = minidl.tensor(np.zeros(shape))
        assert x.is_contiguous() and x.is_contiguous(CL)


# ----------------------------------------------------------------------------- convolution
CONVS = [  # (C, OC, H, W, kernel, stride, padding, dilation)
    (3, 5, 7, 6, 3, 1, 1, 1), (4, 6, 9, 8, 2, 2, 0, 1), (3, 4, 8, 8, 3, 2, (1, 2), (2, 1)),
    (5, 7, 6, 6, 3, 1, 'same', 1), (2, 3, 5, 5, 4, 1, 'same', 1), (3, 2, 11, 7, 5, 3, 2, 1),
]


@pytest.mark.parametrize('c, oc, h, w, k, stride, padding, dilation', CONVS)
@pytest.mark.parametrize('winograd', [False, True])
def test_conv2d_is_the_same_in_both_layouts(c, oc, h, w, k, stride, padding, dilation,
                                            winograd, monkeypatch):
    monkeypatch.setattr(W, 'ENABLED', winograd)
    monkeypatch.setattr(W, 'MIN_CHANNELS', 1)
    rng = np.random.default_rng(c * h + k)
    arrays = (rng.standard_normal((3, c, h, w)), rng.standard_normal((oc, c, k, k)),
              rng.standard_normal(oc))
    y = assert_same_in_both_layouts(
        lambda x, wt, b: F.conv2d(x, wt, b, stride=stride, padding=padding,
                                  dilation=dilation), arrays)
    assert y.is_contiguous(CL)


@pytest.mark.parametrize('chunk_bytes', [1, 2000, 2 ** 30])  # 1 image, a few, all
@pytest.mark.parametrize('c, oc, h, w, k, stride, padding, dilation', CONVS)
def test_channels_last_conv2d_in_blocks_of_images_is_the_same(c, oc, h, w, k, stride,
                                                               padding, dilation, chunk_bytes,
                                                               monkeypatch):
    from minidl.kernels import im2col
    monkeypatch.setattr(W, 'ENABLED', False)
    monkeypatch.setattr(im2col, 'CHUNK_BYTES', chunk_bytes)
    monkeypatch.setattr(im2col, 'GRAD_WEIGHT_BLOCK_BYTES', chunk_bytes)
    rng = np.random.default_rng(c * h + k + 1)
    arrays = (rng.standard_normal((5, c, h, w)), rng.standard_normal((oc, c, k, k)),
              rng.standard_normal(oc))
    assert_same_in_both_layouts(
        lambda x, wt, b: F.conv2d(x, wt, b, stride=stride, padding=padding,
                                  dilation=dilation), arrays)


def test_grouped_conv2d_takes_a_channels_last_input_too():
    rng = np.random.default_rng(3)
    arrays = (rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((6, 2, 3, 3)))
    assert_same_in_both_layouts(lambda x, wt: F.conv2d(x, wt, padding=1, groups=2), arrays)


def test_conv2d_channels_last_second_derivatives():
    rng = np.random.default_rng(4)
    x = minidl.Tensor(nhwc_memory(rng.standard_normal((2, 3, 5, 5))), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
    assert minidl.gradgradcheck(lambda a, b: F.conv2d(a, b, padding=1, stride=2), (x, w))


def test_conv2d_channels_last_matches_torch():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((4, 6, 9, 9)), rng.standard_normal((8, 6, 3, 3))
    tx = torch.tensor(x).contiguous(memory_format=torch.channels_last).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, torch.tensor(w), padding=1)
    ty.backward(torch.ones_like(ty))
    y, (gx, _) = run(lambda a, b: F.conv2d(a, b, padding=1), (x, w), channels_last=True)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- the rest
@pytest.mark.parametrize('options', [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                     dict(kernel_size=2, padding=1),
                                     dict(kernel_size=2, ceil_mode=True)])
def test_max_pool2d_is_the_same_in_both_layouts(options):
    x = np.random.default_rng(6).standard_normal((3, 4, 7, 9))
    x[0, 0, :2, :2] = 1.0  # a tie: the first maximum gets the gradient
    y = assert_same_in_both_layouts(lambda a: F.max_pool2d(a, **options), (x,), tol=0)
    assert y.is_contiguous(CL)


def test_max_pool2d_tiled_backward_routes_inf_and_nan_to_the_argmax_only():
    x = minidl.tensor(np.arange(32.).reshape(1, 2, 4, 4), requires_grad=True)
    y = F.max_pool2d(x.contiguous(memory_format=CL), 2)
    gy = np.ones(y.shape)
    gy[0, 0, 0, 0], gy[0, 1, 1, 1] = np.inf, np.nan
    y.backward(minidl.tensor(gy))
    g = x.grad.data
    assert g[0, 0, 1, 1] == np.inf and np.isnan(g[0, 1, 3, 3])
    assert np.isfinite(np.delete(g.reshape(-1), [5, 31])).all()


def test_avg_pool_and_activations_are_the_same_in_both_layouts():
    x = np.random.default_rng(8).standard_normal((2, 3, 6, 6))
    for fn in (lambda a: F.avg_pool2d(a, 2), F.relu, F.gelu,
               lambda a: F.gelu(a, approximate='tanh')):
        assert_same_in_both_layouts(fn, (x,))
    for fn in (F.relu, F.gelu):
        assert fn(minidl.Tensor(nhwc_memory(x))).is_contiguous(CL)


def test_float32_gelu_keeps_the_layout_and_the_numbers():
    x = np.random.default_rng(9).standard_normal((4, 8, 5, 5)).astype(np.float32)
    y = F.gelu(minidl.Tensor(nhwc_memory(x)))
    assert y.is_contiguous(CL) and (y.data == F.gelu(minidl.tensor(x)).data).all()


def test_fast_cifar_net_is_the_same_in_both_layouts():
    models = pytest.importorskip('models')
    x = np.random.default_rng(10).standard_normal((4, 3, 32, 32))
    outs = []
    for channels_last in (False, True):
        minidl.manual_seed(0)
        net = models.build('vgg-fast-cifar').double()
        net.channels_last = channels_last
        y = net(minidl.tensor(x))
        y.sum().backward()
        outs.append((y.data, [p.grad.data for p in net.parameters() if p.grad is not None]))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-10, atol=1e-12)
    for a, b in zip(outs[1][1], outs[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_layout_helpers():
    a = np.zeros((2, 3, 4, 5), np.float32)
    c = layout.to_channels_last(a)
    assert layout.is_channels_last(c) and not layout.is_channels_last(a)
    assert layout.like(c, layout.empty_like(c)) and not layout.like(a, c)
    assert layout.flat(c).base is not None and layout.flat(c).size == a.size
