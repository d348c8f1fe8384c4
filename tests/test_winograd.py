"""Winograd F(2x2, 3x3) (minidl/kernels/winograd.py): the same convolution as im2col, its
gradients, and which convolutions take it."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.kernels import winograd as W

@pytest.fixture(autouse=True)
def every_channel_count(monkeypatch):
    """The small test convolutions take the Winograd road too (it needs 128 channels by
    default, where it starts to pay)."""
    monkeypatch.setattr(W, 'MIN_CHANNELS', 1)


GEOMETRIES = [  # (N, C, H, W, K, padding)
    (2, 3, 7, 6, 4, 1), (3, 5, 8, 8, 2, 0), (1, 2, 5, 9, 3, (2, 1)), (2, 4, 3, 3, 5, 1),
    (1, 1, 4, 4, 1, 2), (2, 6, 15, 15, 7, 1), (1, 3, 31, 31, 8, 'same'), (2, 2, 9, 4, 3, 'valid'),
]


def conv_and_grads(x, w, b, padding, gy, winograd, monkeypatch):
    monkeypatch.setattr(W, 'ENABLED', winograd)
    X, Wt, B = (minidl.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(X, Wt, B, padding=padding)
    (y * minidl.tensor(gy)).sum().backward()
    return y.data, X.grad.data, Wt.grad.data, B.grad.data


@pytest.mark.parametrize('n, c, h, w, k, padding', GEOMETRIES)
def test_winograd_equals_im2col_in_value_and_every_gradient(n, c, h, w, k, padding,
                                                            monkeypatch):
    rng = np.random.default_rng(h * w + k)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c, 3, 3)), \
        rng.standard_normal(k)
    y = F.conv2d(minidl.tensor(x), minidl.tensor(wt), padding=padding)
    gy = rng.standard_normal(y.shape)
    fast = conv_and_grads(x, wt, b, padding, gy, True, monkeypatch)
    slow = conv_and_grads(x, wt, b, padding, gy, False, monkeypatch)
    for name, a, e in zip(('y', 'dx', 'dw', 'db'), fast, slow):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12 * np.abs(e).max(),
                                   err_msg=name)


@pytest.mark.parametrize('chunk_bytes', [1, 3000, 2 ** 30])
def test_chunks_of_images_give_the_same_numbers_as_the_whole_batch(chunk_bytes, monkeypatch):
    monkeypatch.setattr(W, 'CHUNK_BYTES', chunk_bytes)  # 1: one image at a time
    rng = np.random.default_rng(4)
    x, wt = rng.standard_normal((5, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    whole, v = W.conv2d(x, wt, (1, 1, 1, 1))
    chunked, none = W.conv2d(x, wt, (1, 1, 1, 1), keep_tiles=False)
    assert none is None and v.shape == (16, 4 * 3 * 5, 3)
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)


def test_float32_stays_within_float32_rounding_of_the_float64_result(monkeypatch):
    rng = np.random.default_rng(1)
    x, wt = rng.standard_normal((8, 64, 15, 15)), rng.standard_normal((32, 64, 3, 3)) / 24
    exact = F.conv2d(minidl.tensor(x), minidl.tensor(wt), padding=1).data
    fast = W.conv2d(x.astype(np.float32), wt.astype(np.float32), (1, 1, 1, 1))[0]
    assert fast.dtype == np.float32
    assert np.abs(fast - exact).max() < 2e-5 * np.abs(exact).max()


def test_the_winograd_road_is_differentiable_twice():
    rng = np.random.default_rng(2)
    x = minidl.tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    w = minidl.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    assert W.applies(x.data, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, 3)
    assert minidl.gradcheck(lambda a, b: F.conv2d(a, b, padding=1), [x, w])
    assert minidl.gradgradcheck(lambda a, b: F.conv2d(a, b, padding=1), [x, w])


def test_only_convolutions_with_enough_input_and_output_channels_take_it(monkeypatch):
    monkeypatch.setattr(W, 'MIN_CHANNELS', 128)
    ok = dict(kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    assert W.applies(np.zeros((1, 128, 4, 4), np.float32), out_channels=128, **ok)
    assert not W.applies(np.zeros((1, 127, 4, 4), np.float32), out_channels=256, **ok)
    # 64 -> 256's input gradient is a 256 -> 64 convolution of gy: im2col, as its forward
    assert not W.applies(np.zeros((1, 256, 4, 4), np.float32), out_channels=64, **ok)


def test_a_layer_and_its_input_gradient_take_the_same_road(monkeypatch):
    monkeypatch.setattr(W, 'MIN_CHANNELS', 4)
    rng = np.random.default_rng(5)
    roads = []
    monkeypatch.setattr(W, 'conv2d', lambda *a, f=W.conv2d, **k: roads.append(a[0].shape[1])
                        or f(*a, **k))
    for cin, cout in ((2, 6), (6, 2), (6, 6)):
        x = minidl.tensor(rng.standard_normal((1, cin, 5, 5)), requires_grad=True)
        w = minidl.tensor(rng.standard_normal((cout, cin, 3, 3)), requires_grad=True)
        F.conv2d(x, w, padding=1).sum().backward()
    assert roads == [6, 6]  # 6 -> 6 only: its forward and the input gradient


@pytest.mark.parametrize('kernel, stride, pads, dilation, groups, dtype, takes', [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, np.float32, True),
    ((3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, np.float64, True),
    ((5, 5), (1, 1), (1, 1, 1, 1), (1, 1), 1, np.float32, False),   # not 3x3
    ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, np.float32, False),   # strided
    ((3, 3), (1, 1), (1, 1, 1, 1), (2, 2), 1, np.float32, False),   # dilated
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, np.float32, False),   # grouped
    ((3, 3), (1, 1), (3, 3, 3, 3), (1, 1), 1, np.float32, False),   # gradient would need -1
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, np.float16, False),   # float16: im2col
])
def test_which_convolutions_take_the_winograd_road(kernel, stride, pads, dilation, groups,
                                                    dtype, takes):
    x = np.zeros((1, 2, 6, 6), dtype)
    assert W.applies(x, kernel, stride, pads, dilation, groups, 2) == takes


def test_the_transform_matrices_compute_two_outputs_of_a_three_tap_filter():
    """1-D F(2, 3): A^T [(G g) * (B^T d)] == [g.d[0:3], g.d[1:4]] for any g, d."""
    rng = np.random.default_rng(3)
    g, d = rng.standard_normal(3), rng.standard_normal(4)
    np.testing.assert_allclose(W.AT @ ((W.G @ g) * (W.BT @ d)),
                               [g @ d[0:3], g @ d[1:4]], rtol=1e-14)


def test_the_environment_can_turn_it_off():
    import subprocess
    import sys
    code = "import minidl.kernels.winograd as w; print(w.ENABLED)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env={**__import__('os').environ, 'MINIDL_WINOGRAD': '0'}).stdout
    assert out.strip() == 'False'
