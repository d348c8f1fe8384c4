"""Batch transforms: shapes and dtypes, exact crops and flips, normalisation, PCA lighting."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from minidl.data.transforms import (Compose, ToFloat, Normalize, RandomCrop, CenterCrop,
                                    RandomHorizontalFlip, Lighting, pca_lighting,
                                    channel_stats, train_transform, eval_transform)


def images(n=8, c=3, h=8, w=8, seed=0, low=0):
    return np.random.default_rng(seed).integers(low, 256, size=(n, c, h, w), dtype=np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("t, shape, dtype", [
    (ToFloat(), (8, 3, 8, 8), np.float32),
    (RandomCrop(6), (8, 3, 6, 6), np.uint8),
    (RandomCrop((5, 7), padding=2), (8, 3, 5, 7), np.uint8),
    (CenterCrop(4), (8, 3, 4, 4), np.uint8),
    (RandomHorizontalFlip(), (8, 3, 8, 8), np.uint8),
    (Compose([ToFloat(), Lighting(0.1)]), (8, 3, 8, 8), np.float32),
    (Compose([ToFloat(), Normalize([0.5] * 3, [0.25] * 3)]), (8, 3, 8, 8), np.float32),
    (train_transform([0.5] * 3, [0.25] * 3, crop=8, padding=2, lighting=Lighting()),
     (8, 3, 8, 8), np.float32),
    (eval_transform([0.5] * 3, [0.25] * 3, crop=6), (8, 3, 6, 6), np.float32),
])
def test_shapes_and_dtypes(t, shape, dtype):
    y = t(images(), rng())
    assert y.shape == shape and y.dtype == dtype


def test_to_float_maps_uint8_to_unit_interval():
    x = np.array([0, 1, 128, 255], np.uint8).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(ToFloat()(x, rng()).ravel(),
                                  np.array([0, 1, 128, 255], np.float32) / 255)


def test_compose_applies_in_order_with_the_same_rng():
    seen = []
    t = Compose([lambda x, r: seen.append(('f', r)) or x + 1,
                 lambda x, r: seen.append(('g', r)) or x * 10])
    r = rng()
    assert t(np.zeros((1, 1, 1, 1)), r).item() == 10
    assert seen == [('f', r), ('g', r)]


def test_bad_inputs_name_the_transform_and_shape():
    with pytest.raises(ValueError, match=r"RandomCrop.*\(10, 10\).*\(8, 3, 8, 8\)"):
        RandomCrop(10, padding=0)(images(), rng())
    with pytest.raises(TypeError, match="Normalize.*uint8"):
        Normalize([0.5] * 3, [0.2] * 3)(images(), rng())
    with pytest.raises(ValueError, match=r"Normalize.*2 channels.*\(8, 3, 8, 8\)"):
        Normalize([0.5] * 2, [0.2] * 2)(ToFloat()(images(), None), rng())
    with pytest.raises(ValueError, match=r"Lighting.*3 channels.*\(8, 1, 8, 8\)"):
        Lighting()(ToFloat()(images(c=1), None), rng())
    with pytest.raises(ValueError, match="RandomHorizontalFlip.*(N, C, H, W)"):
        RandomHorizontalFlip()(np.zeros((3, 8, 8), np.uint8), rng())


# ----------------------------------------------------------------------------- RandomCrop
def test_full_size_crop_without_padding_is_the_identity():
    x = images()
    np.testing.assert_array_equal(RandomCrop(8, padding=0)(x, rng()), x)


def crop_offsets(x, y, padding):
    """For each image, which windows of its own padded image equal the crop: (N, I, J) bool."""
    p = padding
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = sliding_window_view(padded, y.shape[2:], axis=(2, 3))  # (N, C, I, J, h, w)
    return (windows == y[:, :, None, None]).all(axis=(1, 4, 5))


def test_every_crop_is_exactly_one_window_of_its_own_padded_image():
    x = images(n=64, h=7, w=9, low=1)  # distinct images, no zero pixels
    y = RandomCrop((5, 6), padding=3)(x, rng())
    match = crop_offsets(x, y, 3)
    assert match.shape == (64, 7 + 6 - 5 + 1, 9 + 6 - 6 + 1)
    np.testing.assert_array_equal(match.sum(axis=(1, 2)), 1)


def test_crop_offsets_cover_the_range_uniformly():
    x = images(n=5000, c=1, h=6, w=6, low=1)
    y = RandomCrop(6, padding=2)(x, rng())
    match = crop_offsets(x, y, 2)
    assert (match.sum(axis=(1, 2)) == 1).all()
    counts = match.sum(axis=0)  # (5, 5) offsets, 200 expected each
    assert counts.shape == (5, 5) and counts.sum() == 5000
    assert np.abs(counts - 200).max() < 70  # 5 binomial standard deviations (~14)


def test_crop_is_reproducible_from_the_rng():
    x = images(n=32)
    t = RandomCrop(8, padding=4)
    np.testing.assert_array_equal(t(x, rng(5)), t(x, rng(5)))
    assert not np.array_equal(t(x, rng(5)), t(x, rng(6)))


def test_center_crop_takes_the_middle():
    x = images(h=8, w=8)
    np.testing.assert_array_equal(CenterCrop(4)(x), x[:, :, 2:6, 2:6])
    np.testing.assert_array_equal(CenterCrop((3, 5))(x), x[:, :, 2:5, 1:6])


# ----------------------------------------------------------------------------- flip
def test_flip_mirrors_each_image_exactly_with_probability_p():
    x = images(n=20000, c=2, h=3, w=4)
    y = RandomHorizontalFlip(p=0.3)(x, rng())
    same = (y == x).all(axis=(1, 2, 3))
    mirrored = (y == x[..., ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all()
    flipped = mirrored & ~same  # a symmetric image is both; random 3x4 images almost never
    assert abs(flipped.mean() - 0.3) < 0.015  # std of the fraction: 0.0032


def test_flip_p_zero_and_one():
    x = images()
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, rng()), x)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, rng()), x[..., ::-1])


# ----------------------------------------------------------------------------- Normalize
def test_normalize_standardises_each_channel_of_the_data_its_stats_came_from():
    g = rng()
    x = np.stack([g.normal(60, 10, (500, 8, 8)), g.normal(128, 40, (500, 8, 8)),
                  g.normal(200, 5, (500, 8, 8))], axis=1).clip(0, 255).astype(np.uint8)
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, np.array([60, 128, 200]) / 255, atol=0.01)
    y = Compose([ToFloat(), Normalize(mean, std)])(x, g)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_normalize_formula():
    x = np.arange(2 * 2 * 1 * 1, dtype=np.float32).reshape(2, 2, 1, 1)
    y = Normalize([1.0, 2.0], [2.0, 4.0])(x)
    np.testing.assert_allclose(y[:, :, 0, 0], [[-0.5, -0.25], [0.5, 0.25]])


# ----------------------------------------------------------------------------- Lighting
def random_eigen(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return np.array([0.2, 0.05, 0.01]), q


def test_lighting_adds_one_constant_rgb_shift_per_image():
    eigval, eigvec = random_eigen()
    x = ToFloat()(images(n=16), None)
    y = Lighting(0.1, eigval, eigvec)(x, rng())
    shift = y - x
    np.testing.assert_allclose(shift, shift[:, :, :1, :1] + 0 * shift, atol=1e-6)
    assert np.abs(shift).max() > 1e-3


def test_lighting_shift_covariance_is_std2_sum_lambda2_ppT():
    eigval, eigvec = random_eigen()
    std, n = 0.1, 40000
    x = np.zeros((n, 3, 1, 1), np.float32)
    delta = Lighting(std, eigval, eigvec)(x, rng())[:, :, 0, 0].astype(np.float64)
    expected = std ** 2 * (eigvec * eigval ** 2) @ eigvec.T  # sum_i lambda_i^2 p_i p_i^T
    np.testing.assert_allclose(delta.mean(0), 0, atol=5 * std * eigval[0] / np.sqrt(n))
    np.testing.assert_allclose(np.cov(delta, rowvar=False), expected,
                               atol=0.03 * expected.max())
    # in the eigenbasis the shift is alpha_i * lambda_i with alpha_i ~ N(0, std^2), i.i.d.
    alpha = delta @ eigvec / eigval
    np.testing.assert_allclose(alpha.std(0), std, rtol=0.03)
    np.testing.assert_allclose(np.corrcoef(alpha, rowvar=False), np.eye(3), atol=0.03)


def test_pca_lighting_recovers_a_known_covariance_in_the_unit_scale():
    eigval, eigvec = np.array([0.01, 0.002, 0.0005]), random_eigen(1)[1]
    cov = (eigvec * eigval) @ eigvec.T
    g = rng()
    pixels = g.multivariate_normal([0.5, 0.45, 0.4], cov, size=(400, 16, 16))  # (N, H, W, 3)
    x = np.round(pixels.clip(0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    val, vec = pca_lighting(x, sample=None)
    assert val.dtype == vec.dtype == np.float32 and val.shape == (3,) and vec.shape == (3, 3)
    assert (np.diff(val) < 0).all()  # descending
    np.testing.assert_allclose(val, eigval, rtol=0.05)
    np.testing.assert_allclose(np.abs(np.sum(vec * eigvec, axis=0)), 1, atol=0.01)  # up to sign
    np.testing.assert_allclose(vec.T @ vec, np.eye(3), atol=1e-5)
    val_s, _ = pca_lighting(x, sample=100)  # a random quarter of the images
    np.testing.assert_allclose(val_s, eigval, rtol=0.1)


# ----------------------------------------------------------------------------- pipelines
def test_train_transform_is_reproducible_and_eval_transform_is_deterministic():
    x = images(n=16)
    t = train_transform([0.5] * 3, [0.25] * 3, crop=8, padding=2)
    np.testing.assert_array_equal(t(x, rng(1)), t(x, rng(1)))
    e = eval_transform([0.5] * 3, [0.25] * 3)
    np.testing.assert_allclose(e(x, rng(1)), (x / 255 - 0.5) / 0.25, atol=1e-6)
    assert "RandomCrop" in repr(t) and "Normalize" in repr(e)
