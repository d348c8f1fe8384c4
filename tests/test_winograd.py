"""Winograd F(2x2, 3x3) and F(4x4, 3x3) (minidl/kernels/winograd.py): the same convolution
as im2col, its gradients, the transform matrices, and which convolutions take it."""
from fractions import Fraction

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.kernels import winograd as W

@pytest.fixture(autouse=True, params=[2, 4], ids=['F2', 'F4'])
def tiling(request, monkeypatch):
    """Every test for both tilings, and the small test convolutions take the Winograd road
    too (it needs 64 channels by default, where it starts to pay)."""
    monkeypatch.setattr(W, 'MIN_CHANNELS', 1)
    monkeypatch.setattr(W, 'TILING', W.TILINGS[request.param])
    return W.TILINGS[request.param]


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


@pytest.mark.parametrize('images', [1, 2, 5])
def test_chunks_of_images_give_the_same_numbers_as_the_whole_batch(images, tiling,
                                                                   monkeypatch):
    rng = np.random.default_rng(4)
    x, wt = rng.standard_normal((5, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((5, 4, 7, 6))
    whole, v = W.conv2d(x, wt, (1, 1, 1, 1))  # (CHUNK_BYTES: 8 MiB, one chunk here)
    whole_gw = W.grad_weight(x, gy, (1, 1, 1, 1), v)
    tiles = -(-7 // tiling.m) * -(-6 // tiling.m)  # m x m tiles covering the 7 x 6 output
    per_image = tiling.a ** 2 * tiles * 4 * 8       # bytes of M (K = 4 > C = 3), float64
    monkeypatch.setattr(W, 'CHUNK_BYTES', images * per_image)
    monkeypatch.setattr(W, 'CHUNK_MULTIPLE', 1)
    chunked, kept = W.conv2d(x, wt, (1, 1, 1, 1))
    assert [a.shape for a in kept.arrays] == [(tiling.a ** 2, tiles * (b - a), 3)
                                              for a, b in kept.chunks]
    assert kept.chunks[0][0] == 0 and kept.chunks[-1][1] == 5
    assert len(kept.chunks) == -(-5 // images)
    assert {b - a for a, b in kept.chunks} <= {5 // len(kept.chunks), -(-5 // len(kept.chunks))}
    assert W.conv2d(x, wt, (1, 1, 1, 1), keep_tiles=False)[1] is None
    np.testing.assert_allclose(chunked, whole, rtol=1e-13, atol=1e-13)
    for kept_v in (kept, None):  # the kept V, or V made again
        np.testing.assert_allclose(W.grad_weight(x, gy, (1, 1, 1, 1), kept_v), whole_gw,
                                   rtol=1e-12, atol=1e-12)


PER_IMAGE = 36 * 2 * 2 * 6 * 8  # F(4x4) on 6 channels at 8x8: 2x2 tiles of 36, float64


@pytest.mark.parametrize('images, chunk_bytes, chunks', [
    (20, 7 * PER_IMAGE, 8),    # 3 chunks' worth: rounded up to 8, of 2 or 3 images
    (5, 2 * PER_IMAGE, 5),     # not more chunks than images
    (20, 10 ** 9, 1),           # all in one
    (17, 2 * PER_IMAGE, 16)])  # 9 -> 16
def test_the_images_are_cut_into_a_multiple_of_eight_nearly_equal_chunks(
        images, chunk_bytes, chunks, monkeypatch):
    monkeypatch.setattr(W, 'CHUNK_BYTES', chunk_bytes)
    x = np.zeros((images, 6, 8, 8))  # F(4x4): 2x2 tiles of 36 numbers per channel, 8 bytes
    got = W._chunks(x, (1, 1, 1, 1), 6, W.F4)
    assert len(got) == chunks and got[0][0] == 0 and got[-1][1] == images
    assert all(a < b for a, b in got) and all(p[1] == q[0] for p, q in zip(got, got[1:]))
    assert max(b - a for a, b in got) - min(b - a for a, b in got) <= 1


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


def test_only_convolutions_with_enough_input_and_output_channels_take_it(tiling, monkeypatch):
    monkeypatch.setattr(W, 'MIN_CHANNELS', None)  # each tiling's own: 128 for F2, 64 for F4
    least = {2: 128, 4: 64}[tiling.m]
    ok = dict(kernel=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    assert W.applies(np.zeros((1, least, 4, 4), np.float32), out_channels=least, **ok)
    assert not W.applies(np.zeros((1, least - 1, 4, 4), np.float32), out_channels=256, **ok)
    # a layer into fewer channels has its input gradient into fewer: im2col, as its forward
    assert not W.applies(np.zeros((1, 256, 4, 4), np.float32), out_channels=least - 1, **ok)


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


def test_the_transform_matrices_compute_m_outputs_of_a_three_tap_filter(tiling):
    """1-D F(m, 3): A^T [(G g) * (B^T d)] == [g.d[0:3], g.d[1:4], ..., g.d[m-1:m+2]]."""
    rng = np.random.default_rng(3)
    g, d = rng.standard_normal(3), rng.standard_normal(tiling.a)
    np.testing.assert_allclose(tiling.AT @ ((tiling.G @ g) * (tiling.BT @ d)),
                               [g @ d[i:i + 3] for i in range(tiling.m)], rtol=1e-13)


def test_cook_toom_builds_lavin_and_grays_f2_up_to_the_signs_of_rows():
    bt, g, at = W.cook_toom(2, (0, 1, -1))
    lavin_bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    lavin_g = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]
    lavin_at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    sign = np.array([-1, 1, 1, -1])  # rows 0 and 3 of B^T; G's row 0 and A^T's column 3
    np.testing.assert_array_equal(bt, sign[:, None] * np.array(lavin_bt))
    np.testing.assert_array_equal(g, [[-1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    np.testing.assert_array_equal(at * [1, 1, 1, -1], lavin_at)
    assert np.array_equal(np.array(lavin_g)[1:3], g[1:3])


@pytest.mark.parametrize('m, points', [(2, (0, 1, -1)), (3, (0, 1, -1, 2)),
                                       (4, (0, 1, -1, 2, -2)),
                                       (4, (0, 1, -1, Fraction(1, 2), -2))])
def test_cook_toom_gives_integer_input_transforms_for_any_points(m, points):
    bt, g, at = W.cook_toom(m, points)
    assert bt.shape == (m + 2, m + 2) and g.shape == (m + 2, 3) and at.shape == (m, m + 2)
    np.testing.assert_array_equal(bt, np.round(bt))
    rng = np.random.default_rng(m)
    f, d = rng.standard_normal(3), rng.standard_normal(m + 2)
    np.testing.assert_allclose(at @ ((g @ f) * (bt @ d)), [f @ d[i:i + 3] for i in range(m)],
                               rtol=1e-12)


@pytest.mark.parametrize('points', [(0, 1), (0, 1, 1)])
def test_cook_toom_needs_m_plus_one_distinct_points(points):
    with pytest.raises(ValueError, match=r'cook_toom: F\(2, 3\) needs 3 distinct points'):
        W.cook_toom(2, points)


@pytest.mark.parametrize('setting, expected', [('0', 'False F(2'), ('2', 'True F(2'),
                                               ('1', 'True F(2'), ('4', 'True F(4'),
                                               (None, 'True F(2')])
def test_the_environment_chooses_the_tiling_or_turns_it_off(setting, expected):
    import os
    import subprocess
    import sys
    code = "import minidl.kernels.winograd as w; print(w.ENABLED, w.TILING)"
    env = {k: v for k, v in os.environ.items() if k != 'MINIDL_WINOGRAD'}
    if setting is not None:
        env['MINIDL_WINOGRAD'] = setting
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=env).stdout
    assert out.startswith(expected)


def test_a_tile_block_chooses_the_road_of_forward_and_backward_wherever_backward_runs(
        monkeypatch):
    rng = np.random.default_rng(6)
    x, wt = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    used = []
    for name in ('conv2d', 'grad_weight'):
        monkeypatch.setattr(W, name, lambda *a, f=getattr(W, name), name=name, **k:
                            used.append((name, k.get('tiling') or a[-1])) or f(*a, **k))
    results = {}
    for m in (0, 2, 4):
        used.clear()
        X, Wt = minidl.tensor(x, requires_grad=True), minidl.tensor(wt, requires_grad=True)
        with minidl.winograd_tile(m):
            y = F.conv2d(X, Wt, padding=1)
        (y * y).sum().backward()  # outside the block
        results[m] = y.data, X.grad.data, Wt.grad.data
        tilings = {t.m for _, t in used}
        assert tilings == (set() if m == 0 else {m}), (m, used)
        assert len(used) == (0 if m == 0 else 3)  # forward, input gradient, weight gradient
    for m in (2, 4):
        for a, e in zip(results[m], results[0]):
            np.testing.assert_allclose(a, e, rtol=1e-11, atol=1e-11 * np.abs(e).max())


@pytest.mark.parametrize('m', [1, 3, 8, True, '4'])
def test_a_tile_block_refuses_other_tiles(m):
    with pytest.raises(ValueError,
                       match=r'winograd tile: winograd must be 0 \(im2col\), 2 or 4'):
        with minidl.winograd_tile(m):
            pass


@pytest.mark.parametrize('setting', ['3', 'yes', '4x4'])
def test_a_bad_environment_setting_is_one_clear_error_at_the_first_convolution(setting):
    import os
    import subprocess
    import sys
    code = ("import numpy as np, minidl, minidl.functional as F\n"
            "x = minidl.tensor(np.ones((1, 256, 4, 4), np.float32))\n"
            "w = minidl.tensor(np.ones((256, 256, 3, 3), np.float32))\n"
            "try:\n    F.conv2d(x, w, padding=1)\n"
            "except ValueError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env={**os.environ, 'MINIDL_WINOGRAD': setting})
    assert out.returncode == 0, out.stderr  # (import minidl itself works)
    assert out.stdout.strip() == (f"refused: MINIDL_WINOGRAD must be 0 (off), 1 or 2 "
                                  f"(F(2x2), the default) or 4 (F(4x4)), got {setting!r}")


@pytest.mark.parametrize('where', ['x', 'w', 'gy'])
def test_inf_and_nan_reach_only_the_outputs_im2col_puts_them_in(where, monkeypatch):
    """Winograd mixes a whole tile's numbers, so an inf would reach outputs whose windows
    do not hold it: a result with an inf or a NaN is computed again by im2col."""
    rng = np.random.default_rng(7)
    x, wt = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 9, 8))
    target = {'x': x, 'w': wt, 'gy': gy}[where]
    target.flat[5], target.flat[-7] = np.inf, np.nan
    results = []
    for winograd in (True, False):
        monkeypatch.setattr(W, 'ENABLED', winograd)
        X, Wt = minidl.tensor(x, requires_grad=True), minidl.tensor(wt, requires_grad=True)
        with np.errstate(invalid='ignore'):  # (im2col's inf * 0, as NumPy's matmul warns)
            y = F.conv2d(X, Wt, padding=1)
            y.backward(minidl.tensor(gy))
        results.append((y.data, X.grad.data, Wt.grad.data))
    assert any(not np.isfinite(e).all() for e in results[1])
    for a, e in zip(*results):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(e))
        finite = np.isfinite(e)
        np.testing.assert_allclose(a[finite], e[finite], rtol=1e-12, atol=1e-12)
