"""conv2d: gradient checks (first and second order) in float64, parity with PyTorch over a
grid of strides, paddings, dilations and groups, dtype preservation (each on every device),
what forward keeps for backward, and bad input."""
import itertools

import numpy as np
import pytest

import minidl
from minidl.functional import conv
from minidl.kernels import im2col, winograd
from minidl.functional.conv import conv2d
from helpers import (GPU_FLOAT32_RTOL, assert_parity, check_torch_parity, rand, requires_torch,
                     torch)


def _case(x_shape, w_shape, bias=True, **options):
    return x_shape, w_shape, bias, options


# x (N, C, H, W), weight (OC, C/groups, KH, KW), bias?, options. Tiny: gradcheck runs
# O(elements) forward passes. Even sizes with stride 2 leave the last row/column unused.
CASES = {
    'basic': _case((2, 3, 5, 5), (4, 3, 3, 3)),
    'no_bias': _case((2, 3, 5, 4), (2, 3, 3, 3), bias=False),
    'kernel_1x1': _case((2, 3, 4, 4), (5, 3, 1, 1)),
    'kernel_covers_input': _case((1, 2, 3, 4), (3, 2, 3, 4)),
    'non_square_kernel': _case((1, 2, 5, 6), (3, 2, 2, 3)),
    'stride2_even_input': _case((2, 2, 6, 6), (3, 2, 3, 3), stride=2),
    'stride2_1x1_kernel': _case((1, 2, 6, 5), (3, 2, 1, 1), stride=2, bias=False),
    'stride_2_1': _case((1, 2, 6, 5), (3, 2, 2, 3), stride=(2, 1)),
    'padding1': _case((1, 2, 4, 4), (3, 2, 3, 3), padding=1),
    'padding_1_2_stride2': _case((2, 2, 4, 5), (2, 2, 3, 2), padding=(1, 2), stride=2),
    'dilation2': _case((1, 2, 7, 6), (2, 2, 3, 2), dilation=2),
    'dilation2_padding1_stride2': _case((1, 2, 6, 6), (3, 2, 2, 2), dilation=2, padding=1,
                                        stride=2),
    'dilation_2_1_padding_1_0': _case((2, 2, 6, 5), (2, 2, 2, 3), dilation=(2, 1),
                                      padding=(1, 0), bias=False),
    'groups2': _case((2, 4, 5, 4), (6, 2, 3, 2), groups=2, padding=1),
    'groups2_stride_2_1_dilation2': _case((1, 4, 7, 6), (4, 2, 2, 2), groups=2,
                                          stride=(2, 1), dilation=2, bias=False),
    'depthwise': _case((2, 3, 5, 5), (3, 1, 3, 3), groups=3, padding=1),
    'depthwise_multiplier2_stride2': _case((1, 3, 6, 5), (6, 1, 3, 2), groups=3, stride=2,
                                           padding=(1, 2)),
    # padding='same' (stride 1): odd spans pad alike; an odd extra row/column goes bottom/right
    'same_odd_kernel': _case((2, 3, 5, 5), (4, 3, 3, 3), padding='same'),
    'same_even_kernel': _case((1, 2, 5, 6), (3, 2, 2, 4), padding='same'),
    'same_dilation_3_1_groups2': _case((1, 4, 6, 5), (4, 2, 2, 3), padding='same',
                                       dilation=(3, 1), groups=2, bias=False),
    'valid': _case((1, 2, 5, 6), (3, 2, 3, 2), padding='valid', stride=2),
    # unbatched (C, H, W): a batch of one, returned as (OC, OH, OW)
    'unbatched': _case((3, 5, 4), (4, 3, 3, 2), padding=1, stride=(2, 1)),
    'unbatched_same_even_kernel': _case((2, 4, 5), (3, 2, 2, 2), padding='same', bias=False),
}

# a few configurations for second derivatives (incl. groups and stride)
DOUBLE = ['basic', 'stride2_even_input', 'padding_1_2_stride2', 'groups2',
          'groups2_stride_2_1_dilation2', 'depthwise_multiplier2_stride2']


def _inputs(name, device, seed=0):
    x_shape, w_shape, bias, options = CASES[name]
    tensors = [rand(*x_shape, seed=seed, device=device),
               rand(*w_shape, seed=seed + 1, device=device)]
    if bias:
        tensors.append(rand(w_shape[0], seed=seed + 2, device=device))
    return tensors, options


def _ours(options):
    return lambda x, w, b=None: conv2d(x, w, b, **options)


def _theirs(options):
    return lambda x, w, b=None: torch.nn.functional.conv2d(x, w, b, **options)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize('name', sorted(CASES))
def test_gradcheck(name, device):
    tensors, options = _inputs(name, device)
    assert minidl.gradcheck(_ours(options), tensors)


@pytest.mark.parametrize('name', DOUBLE)
def test_gradgradcheck(name, device):
    tensors, options = _inputs(name, device)
    assert minidl.gradgradcheck(_ours(options), tensors)


# ----------------------------------------------------------------------------- PyTorch
@requires_torch
@pytest.mark.parametrize('name', sorted(CASES))
def test_parity_with_torch(name, device):
    tensors, options = _inputs(name, device)
    check_torch_parity(_ours(options), _theirs(options), tensors)


GRID = list(itertools.product([1, 2, (2, 1)], [0, 1, (1, 2)], [1, 2], [1, 2, 4], [True, False]))


@requires_torch
@pytest.mark.parametrize('stride, padding, dilation, groups, bias', GRID)
def test_parity_with_torch_over_the_option_grid(stride, padding, dilation, groups, bias,
                                                 device):
    # C = 4, so groups = 4 is depthwise; 6 x 7 input, 3 x 2 kernel: windows rarely tile
    x, w = rand(2, 4, 6, 7, seed=3, device=device), rand(4, 4 // groups, 3, 2, seed=4,
                                                         device=device)
    tensors = [x, w, rand(4, seed=5, device=device)] if bias else [x, w]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_torch_parity(_ours(options), _theirs(options), tensors)


@requires_torch
@pytest.mark.parametrize('name', DOUBLE)
def test_double_backward_parity_with_torch(name, device):
    """d/d(x, W) of |dL/dx|^2 + |dL/dW|^2 for L = <gy, conv2d(x, W, b)>."""
    (x, w, *b), options = _inputs(name, device)
    gy = np.random.default_rng(7).standard_normal(conv2d(x, w, *b, **options).shape)
    gx, gw = minidl.grad(conv2d(x, w, *b, **options), [x, w], minidl.tensor(gy, device=device),
                         create_graph=True)
    assert gx.device == gw.device == device
    ((gx * gx).sum() + (gw * gw).sum()).backward()

    tx, tw, *tb = [torch.tensor(t.numpy(), requires_grad=True) for t in [x, w, *b]]
    tgx, tgw = torch.autograd.grad(torch.nn.functional.conv2d(tx, tw, *tb, **options),
                                   [tx, tw], torch.tensor(gy), create_graph=True)
    ((tgx * tgx).sum() + (tgw * tgw).sum()).backward()
    assert_parity(gx, tgx)
    assert_parity(gw, tgw)
    assert x.grad.device == w.grad.device == device
    assert_parity(x.grad, tx.grad)
    assert_parity(w.grad, tw.grad)


@requires_torch
def test_alexnet_two_group_layer_matches_torch_in_float32(device):
    rtol = 1e-5 if device == 'cpu' else GPU_FLOAT32_RTOL
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((2, 96, 27, 27), dtype=np.float32),
                      requires_grad=True, device=device)
    w = minidl.tensor(rng.standard_normal((256, 48, 5, 5), dtype=np.float32) * 0.03,
                      requires_grad=True, device=device)
    b = minidl.tensor(rng.standard_normal(256, dtype=np.float32), requires_grad=True,
                      device=device)
    y = conv2d(x, w, b, padding=2, groups=2)
    tx, tw, tb = [torch.tensor(t.numpy(), requires_grad=True) for t in (x, w, b)]
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=2, groups=2)
    assert y.shape == (2, 256, 27, 27) and y.dtype == np.float32 and y.device == device
    assert_parity(y, ty, rtol=rtol)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    y.backward(minidl.tensor(g, device=device))
    ty.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        assert ours.grad.device == device and ours.grad.dtype == np.float32
        assert_parity(ours.grad, theirs.grad, rtol=rtol)


# ----------------------------------------------------------------------------- behaviour
def test_the_worked_example_of_the_docs(device):
    # docs/im2col.md: a 3x3 image of 1..9, a 2x2 kernel [[1, 0], [0, -1]]: x[p,q] - x[p+1,q+1]
    x = minidl.tensor(np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True,
                      device=device)
    w = minidl.tensor(np.array([[[[1.0, 0.0], [0.0, -1.0]]]]), requires_grad=True,
                      device=device)
    b = minidl.tensor(np.array([0.5]), requires_grad=True, device=device)
    y = conv2d(x, w, b)
    np.testing.assert_array_equal(y.numpy(), [[[[-3.5, -3.5], [-3.5, -3.5]]]])
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1, 1, 0], [1, 0, -1], [0, -1, -1]]]])
    np.testing.assert_array_equal(b.grad.numpy(), [4])


def test_padding_same_keeps_the_size_and_valid_is_no_padding(device):
    x, w = rand(1, 2, 7, 6, device=device), rand(3, 2, 4, 3, seed=1, device=device)
    assert conv2d(x, w, padding='same').shape == (1, 3, 7, 6)
    assert conv2d(x, w, padding='same', dilation=2).shape == (1, 3, 7, 6)
    np.testing.assert_array_equal(conv2d(x, w, padding='valid').numpy(), conv2d(x, w).numpy())


def test_unbatched_input_is_a_batch_of_one_without_the_batch_axis(device):
    x, w, b = rand(2, 5, 5, device=device), rand(3, 2, 3, 3, seed=1, device=device), \
        rand(3, seed=2, device=device)
    y = conv2d(x, w, b, padding=1)
    assert y.shape == (3, 5, 5)
    np.testing.assert_array_equal(y.numpy(), conv2d(x.reshape(1, 2, 5, 5), w, b,
                                                   padding=1).numpy()[0])
    y.sum().backward()
    assert x.grad.shape == (2, 5, 5)


def test_float32_stays_float32_on_the_device(device):
    rng = np.random.default_rng(0)
    x, w, b = [minidl.tensor(rng.standard_normal(s, dtype=np.float32), requires_grad=True,
                             device=device)
               for s in ((2, 4, 5, 5), (6, 2, 3, 3), (6,))]
    y = conv2d(x, w, b, stride=2, padding=1, groups=2)
    assert y.dtype == np.float32 and y.device == device
    geo = y.grad_fn.geo  # read before backward frees the graph
    y.sum().backward()
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (np.float32,) * 3
    assert x.grad.device == w.grad.device == b.grad.device == device
    # the gradient Functions themselves compute in float32 (no promotion and cast back)
    gy = minidl.tensor(np.ones(y.shape, np.float32), device=device)
    assert conv.Conv2dGradInput(geo, x.shape)(gy, w).dtype == np.float32
    assert conv.Conv2dGradWeight(geo, w.shape[2:])(x, gy).dtype == np.float32


@pytest.mark.parametrize('road, kept', [('im2col', (1, 3 * 3 * 3, 2 * 5 * 5)),   # (G, C/G*KH*KW, N*OH*OW)
                                        ('winograd', (36, 2 * 2 * 2, 3))])   # (a^2, tiles*N, C)
def test_forward_keeps_col_for_the_weight_gradient_and_backward_releases_it(road, kept,
                                                                            monkeypatch):
    monkeypatch.setattr(winograd, 'ENABLED', road == 'winograd')
    monkeypatch.setattr(winograd, 'MIN_CHANNELS', 1)
    monkeypatch.setattr(winograd, 'TILING', winograd.F4)  # 6x6 tiles, 2x2 of them
    x, w = rand(2, 3, 5, 5), rand(4, 3, 3, 3)
    y = conv2d(x, w, padding=1)
    fn = y.grad_fn
    assert isinstance(fn, conv.Conv2d)
    assert fn.inputs[0] is x and fn.inputs[1] is w
    col = fn.col.arrays[0] if road == 'winograd' else fn.col  # (Winograd: by chunks)
    assert col.shape == kept
    y.sum().backward()
    assert getattr(fn, 'col', None) is None  # released (the engine frees the graph too)


def test_col_is_not_kept_when_the_weight_needs_no_gradient():
    x, w = rand(2, 3, 5, 5), rand(4, 3, 3, 3, requires_grad=False)
    fn = conv2d(x, w, padding=1).grad_fn
    assert fn.col is None
    assert not any(minidl.backend.is_array(v) for v in vars(fn).values())


def test_a_col_bigger_than_the_limit_is_recomputed_not_kept(monkeypatch):
    monkeypatch.setattr(winograd, 'ENABLED', False)
    monkeypatch.setattr(im2col, 'KEEP_COL_MAX_BYTES', 27 * 50 * 4 - 1)  # one byte short
    x, w = rand(2, 3, 5, 5), rand(4, 3, 3, 3)
    y = conv2d(x, w, padding=1)
    assert y.grad_fn.col is None
    y.sum().backward()
    assert w.grad.shape == w.shape


def test_the_weight_gradient_is_the_same_with_and_without_a_kept_col():
    x, w = rand(2, 4, 6, 6, requires_grad=False), rand(6, 2, 3, 3)
    gy = rand(2, 6, 3, 3, requires_grad=False).data
    fn = conv2d(x, w, stride=2, padding=1, groups=2).grad_fn
    kept = conv.Conv2dGradWeight(fn.geo, (3, 3), fn.col)(x, gy)
    recomputed = conv.Conv2dGradWeight(fn.geo, (3, 3))(x, gy)
    np.testing.assert_array_equal(kept.numpy(), recomputed.numpy())


def test_only_the_requested_gradients_are_computed(monkeypatch):
    x, w = rand(2, 3, 5, 5), rand(4, 3, 3, 3, requires_grad=False)

    def fail(*args):
        raise AssertionError("Conv2dGradWeight ran although W does not require grad")
    monkeypatch.setattr(conv.Conv2dGradWeight, 'forward', fail)
    conv2d(x, w).sum().backward()
    assert x.grad is not None and w.grad is None


# ----------------------------------------------------------------------------- chunks
# On the CPU an NCHW batch goes through its three GEMMs a chunk of images at a time
# (kernels/im2col.py): the numbers must be those of the batch as one GEMM, for every
# geometry, and the weight gradient's sum the same bits on any thread count.
CHUNKED = {  # x (N, C, H, W), weight, options: images big enough for chunks of one image
    'plain': ((9, 2, 12, 11), (3, 2, 3, 3), {}),
    'stride_2_1_padding': ((9, 2, 13, 12), (4, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2))),
    'dilation': ((9, 2, 12, 12), (3, 2, 2, 3), dict(dilation=(2, 1), padding=1)),
    'groups': ((9, 4, 11, 12), (6, 2, 3, 3), dict(groups=2, padding=1)),
    'same_even_kernel': ((9, 3, 10, 11), (2, 3, 2, 4), dict(padding='same')),
    'kernel_1x1': ((9, 3, 8, 8), (5, 3, 1, 1), {}),
}


def _conv_and_grads(x_shape, w_shape, options, seed=0):
    x, w, b = rand(*x_shape, seed=seed), rand(*w_shape, seed=seed + 1), \
        rand(w_shape[0], seed=seed + 2)
    y = conv2d(x, w, b, **options)
    y.backward(rand(*y.shape, seed=seed + 3, requires_grad=False))
    return y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize('name', sorted(CHUNKED))
def test_a_batch_in_chunks_gives_the_numbers_of_one_gemm(name, monkeypatch):
    x_shape, w_shape, options = CHUNKED[name]
    monkeypatch.setattr(winograd, 'ENABLED', False)
    whole = _conv_and_grads(x_shape, w_shape, options)
    monkeypatch.setattr(im2col, 'CHUNK_BYTES_NCHW', 1)  # one image per chunk
    geo = conv2d(rand(*x_shape), rand(*w_shape), **options).grad_fn.geo
    out_hw = conv._out_hw(x_shape, w_shape[2:], geo)
    assert len(conv._chunks(x_shape, w_shape[2:], w_shape[0], out_hw, np.dtype(np.float64),
                            np)) == x_shape[0]
    for a, b in zip(whole, _conv_and_grads(x_shape, w_shape, options)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('threads', [1, 2, 3])
def test_the_chunked_weight_gradient_has_the_same_bits_on_any_thread_count(threads,
                                                                           monkeypatch):
    monkeypatch.setattr(winograd, 'ENABLED', False)
    monkeypatch.setattr(im2col, 'CHUNK_BYTES_NCHW', 1)
    x_shape, w_shape, options = CHUNKED['groups']
    before = minidl.get_num_threads()
    try:
        minidl.set_num_threads(1)
        one = _conv_and_grads(x_shape, w_shape, options)[2]
        minidl.set_num_threads(threads)
        np.testing.assert_array_equal(_conv_and_grads(x_shape, w_shape, options)[2], one)
    finally:
        minidl.set_num_threads(before)


def test_which_batches_go_in_chunks():
    f32 = np.dtype(np.float32)
    # AlexNet-CIFAR at batch 128: conv1 (3 -> 64 at 32x32) in chunks of 16 images,
    first = conv._chunks((128, 3, 32, 32), (3, 3), 64, (32, 32), f32, np)
    assert len(first) == 8 and {b - a for a, b in first} == {16}
    # conv4 (384 -> 256 at 7x7): products of 16 * 49 columns would be shorter than their
    # 3456 rows, so one GEMM; so is a batch that fits in one chunk, and any GPU batch
    assert conv._chunks((128, 384, 7, 7), (3, 3), 256, (7, 7), f32, np) == [(0, 128)]
    assert conv._chunks((4, 3, 32, 32), (3, 3), 64, (32, 32), f32, np) == [(0, 4)]
    assert im2col.image_chunks(128, 1024, 64, 4, xp=object()) == [(0, 128)]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('x_shape, w_shape, b_shape, options, expected', [
    ((5, 5), (4, 3, 3, 3), None, {}, ['3-D (C, H, W) or 4-D', '(5, 5)']),
    ((2, 3, 5, 5), (4, 3, 3), None, {}, ['4-D', '(4, 3, 3)']),
    ((2, 3, 5, 5), (4, 2, 3, 3), None, {}, ['channel mismatch', '(2, 3, 5, 5)', '(4, 2, 3, 3)']),
    ((2, 4, 5, 5), (4, 4, 3, 3), None, dict(groups=2),
     ['channel mismatch', '(2, 4, 5, 5)', '(4, 4, 3, 3)']),
    ((2, 4, 5, 5), (3, 2, 3, 3), None, dict(groups=2), ['OC=3', '(3, 2, 3, 3)', 'groups=2']),
    ((2, 3, 5, 5), (4, 1, 3, 3), None, dict(groups=2), ['C=3', '(2, 3, 5, 5)', 'groups=2']),
    ((2, 3, 5, 5), (4, 3, 3, 3), (3,), {}, ['bias', '(3,)', '(4, 3, 3, 3)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), (1, 4), {}, ['bias', '(1, 4)']),
    ((2, 3, 4, 4), (4, 3, 5, 3), None, {}, ['larger than the padded input', '(2, 3, 4, 4)',
                                            '(4, 3, 5, 3)']),
    ((2, 3, 4, 4), (4, 3, 3, 3), None, dict(dilation=2),
     ['larger than the padded input', '(2, 3, 4, 4)', '(4, 3, 3, 3)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(stride=0), ['stride (0, 0)', '(2, 3, 5, 5)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(stride=(1, -1)), ['stride (1, -1)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(dilation=(0, 1)), ['dilation (0, 1)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(padding=-1), ['padding (-1, -1)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(padding=(1, 2, 3)), ['padding', '(1, 2, 3)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(groups=0), ['groups']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(padding='foo'), ["'same', 'valid'", "'foo'"]),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(padding='same', stride=2),
     ["padding='same'", 'stride (2, 2)']),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, dict(dilation=-2), ['dilation (-2, -2)']),
    ((3, 5, 5), (4, 2, 3, 3), None, {}, ['channel mismatch', '(4, 2, 3, 3)']),
])
def test_bad_input_names_conv2d_and_the_shapes(x_shape, w_shape, b_shape, options, expected):
    b = None if b_shape is None else rand(*b_shape)
    with pytest.raises(ValueError) as info:
        conv2d(rand(*x_shape), rand(*w_shape), b, **options)
    message = str(info.value)
    assert 'conv2d' in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('winograd_channels', [1, 10 ** 6])  # Winograd, im2col
def test_an_empty_batch_gives_an_empty_output_and_zero_weight_gradients(
        channels_last, winograd_channels, monkeypatch):
    monkeypatch.setattr(winograd, 'MIN_CHANNELS', winograd_channels)
    x = minidl.Tensor(np.zeros((0, 3, 6, 6)))  # as torch: (0, OC, OH, OW), grads of zeros
    if channels_last:
        x = x.contiguous(memory_format=minidl.channels_last)
    x.requires_grad = True
    w = minidl.tensor(np.ones((4, 3, 3, 3)), requires_grad=True)
    b = minidl.tensor(np.ones(4), requires_grad=True)
    y = conv2d(x, w, b, padding=1)
    y.sum().backward()
    assert y.shape == (0, 4, 6, 6) and x.grad.shape == (0, 3, 6, 6)
    assert not w.grad.data.any() and not b.grad.data.any()
    with minidl.no_grad():  # (nothing kept for backward: another road)
        assert conv2d(x, w, padding=1).shape == (0, 4, 6, 6)
