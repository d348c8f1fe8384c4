"""Batch data augmentation: every transform maps a whole NCHW batch at once.

A transform is a callable ``t(x, rng) -> x`` where ``x`` is a NumPy array of shape
``(N, C, H, W)`` on the host and ``rng`` is a ``np.random.Generator``. Random transforms
draw everything they need for the batch from ``rng`` in one call (one crop offset, one
flip coin, one lighting vector per image), so a batch costs a handful of NumPy calls and no
Python loop over images; passing the generator explicitly makes a pipeline reproducible
(``DataLoader`` hands each epoch its own generator, see ``minidl/data/loader.py``).

The usual CIFAR/ImageNet order, as built by ``train_transform``::

    RandomCrop -> RandomHorizontalFlip     on uint8 pixels in [0, 255] (cheap to move)
    ToFloat                                x / 255: float32 in [0, 1]
    Lighting                               PCA colour noise, in the [0, 1] scale
    Normalize                              (x - mean_c) / std_c

The formulas and the derivation of the PCA lighting are in ``docs/augmentation.md``.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..utils import check_int, check_number, pair

# PCA of ImageNet RGB pixels in the [0, 1] scale (the constants of fb.resnet.torch and the
# torchvision reference scripts); columns of IMAGENET_EIGVEC are the eigenvectors.
IMAGENET_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
IMAGENET_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                            [-0.5808, -0.0045, -0.8140],
                            [-0.5836, -0.6948, 0.4203]], np.float32)


def _check_batch(name, x, channels=None, floating=False):
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, 'shape', None)
        raise ValueError(f"{name}: expected a NumPy batch of shape (N, C, H, W), "
                         f"got {type(x).__name__} with shape {shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channels, got a batch of shape {x.shape}")
    if floating and x.dtype.kind != 'f':
        raise TypeError(f"{name}: expected a floating-point batch (apply ToFloat first), "
                        f"got dtype {x.dtype} with shape {x.shape}")


def _check_rng(name, rng):
    """A random transform draws from the ``np.random.Generator`` it is given."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name}: rng must be a numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")


def _finite(name, what, values, dtype=np.float32):
    """``values`` (numbers) as a non-empty array of finite numbers of ``dtype``."""
    try:
        array = np.asarray(values, dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: {what} must be numbers, got {values!r:.60} ({e})") from None
    if not array.size or not np.all(np.isfinite(array)):  # (None reads as NaN)
        raise ValueError(f"{name}: {what} must be finite numbers, got {values!r:.60}")
    return array


class Compose:
    """Apply transforms in order: ``Compose([f, g])(x, rng) == g(f(x, rng), rng)``."""

    def __init__(self, transforms):
        if not isinstance(transforms, (list, tuple)):
            raise TypeError(f"Compose: expected a list of transforms, got "
                            f"{type(transforms).__name__}")
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def set_epoch(self, epoch):
        """Tell the transforms that depend on the epoch (``AlternatingFlip``) which it is."""
        for t in self.transforms:
            if hasattr(t, 'set_epoch'):
                t.set_epoch(epoch)

    def __repr__(self):
        body = ''.join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{body}\n])"


class ToFloat:
    """uint8 pixels to float32 in [0, 1]: ``y = x / 255``. Float batches become float32."""

    def __call__(self, x, rng=None):
        _check_batch('ToFloat', x)
        if x.dtype == np.uint8:
            y = x.astype(np.float32)
            y /= 255
            return y
        if x.dtype.kind == 'f':
            return x.astype(np.float32, copy=False)
        raise TypeError(f"ToFloat: expected uint8 or floating-point pixels, "
                        f"got dtype {x.dtype} with shape {x.shape}")

    def __repr__(self):
        return "ToFloat()"


class Normalize:
    """Per channel ``y[n, c] = (x[n, c] - mean[c]) / std[c]``; float32 stays float32.

    ``mean`` and ``std`` are in the scale of the input (``[0, 1]`` after ``ToFloat``);
    ``channel_stats`` computes them from a uint8 dataset in that scale.
    """

    def __init__(self, mean, std):
        self.mean = _finite('Normalize', 'mean', mean).reshape(-1)
        self.std = _finite('Normalize', 'std', std).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: mean has shape {self.mean.shape}, "
                             f"std has shape {self.std.shape}")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, x, rng=None):
        _check_batch('Normalize', x, channels=len(self.mean), floating=True)
        mean = self.mean.astype(x.dtype)[:, None, None]
        std = self.std.astype(x.dtype)[:, None, None]
        y = x - mean
        y /= std
        return y

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Pad every side by ``padding`` (zeros, or ``padding_mode='reflect'``: the mirror image
    without repeating the edge, as ``numpy.pad(mode='reflect')`` and torchvision), then cut
    an ``(h, w)`` window at an independent uniform offset per image:

        y[n, c, r, s] = xpad[n, c, i_n + r, j_n + s],
        i_n ~ U{0, ..., H + 2p - h},  j_n ~ U{0, ..., W + 2p - w}

    The windows are one gather from a strided view of the padded batch (no copy of the
    windows, no loop over images).
    """

    def __init__(self, size, padding=0, padding_mode='constant'):
        self.size = pair('RandomCrop', 'size', size, 1)
        padding = check_int('RandomCrop', 'padding', padding, 0)
        if padding_mode not in ('constant', 'reflect'):
            raise ValueError(f"RandomCrop: padding_mode must be 'constant' or 'reflect', got "
                             f"{padding_mode!r}")
        self.padding, self.padding_mode = int(padding), padding_mode

    def __call__(self, x, rng):
        _check_batch('RandomCrop', x)
        _check_rng('RandomCrop', rng)
        n, c, H, W = x.shape
        h, w = self.size
        p = self.padding
        if h > H + 2 * p or w > W + 2 * p:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"{(H + 2 * p, W + 2 * p)} of a batch of shape {x.shape}")
        if p and self.padding_mode == 'reflect':
            if p >= min(H, W):
                raise ValueError(f"RandomCrop: reflect padding {p} needs images larger than "
                                 f"{p}, got a batch of shape {x.shape}")
            padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode='reflect')
        elif p:
            padded = np.zeros((n, c, H + 2 * p, W + 2 * p), x.dtype)
            padded[:, :, p:p + H, p:p + W] = x
        else:
            padded = x
        i = rng.integers(0, H + 2 * p - h + 1, size=n)
        j = rng.integers(0, W + 2 * p - w + 1, size=n)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # (N, C, I, J, h, w)
        return windows[np.arange(n), :, i, j]  # advanced indices first: (N, C, h, w)

    def __repr__(self):
        mode = f", padding_mode={self.padding_mode!r}" if self.padding_mode != 'constant' else ''
        return f"RandomCrop(size={self.size}, padding={self.padding}{mode})"


class CenterCrop:
    """The central ``(h, w)`` window: rows ``(H - h) // 2 ...``, columns ``(W - w) // 2 ...``."""

    def __init__(self, size):
        self.size = pair('CenterCrop', 'size', size, 1)

    def __call__(self, x, rng=None):
        _check_batch('CenterCrop', x)
        h, w = self.size
        H, W = x.shape[2:]
        if h > H or w > W:
            raise ValueError(f"CenterCrop: crop {self.size} is larger than the images of a "
                             f"batch of shape {x.shape}")
        top, left = (H - h) // 2, (W - w) // 2
        return x[:, :, top:top + h, left:left + w]

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, independently:

        y[n, c, r, s] = x[n, c, r, W - 1 - s]  if u_n < p  else  x[n, c, r, s],  u_n ~ U[0, 1)
    """

    def __init__(self, p=0.5):
        self.p = check_number('RandomHorizontalFlip', 'p', p, 0, 1)

    def __call__(self, x, rng):
        _check_batch('RandomHorizontalFlip', x)
        _check_rng('RandomHorizontalFlip', rng)
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]  # one gather and one scatter of the flipped images
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class AlternatingFlip:
    """Mirror every image on odd epochs, none on even ones (airbench's "alternating flip").

    Combined with a training set in which a random half of the images was mirrored once
    (``flip_half_``), each image is seen mirrored in every other epoch: over two epochs,
    both views, where independent coin flips (``RandomHorizontalFlip``) show a quarter of
    the images the same way twice. The ``DataLoader`` tells it the epoch (``set_epoch``).
    """

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = check_int('AlternatingFlip.set_epoch', 'epoch', epoch, 0)

    def __call__(self, x, rng=None):
        _check_batch('AlternatingFlip', x)
        return x[..., ::-1] if self.epoch % 2 else x

    def __repr__(self):
        return "AlternatingFlip()"


def flip_half_(images, seed=0):
    """Mirror a random half of ``images`` (N, C, H, W) in place, chosen by ``seed``;
    returns the boolean mask of the mirrored ones."""
    _check_batch('flip_half_', images)
    seed = check_int('flip_half_', 'seed', seed, 0)
    mask = np.random.default_rng(seed).random(len(images)) < 0.5
    images[mask] = images[mask][..., ::-1]
    return mask


class Lighting:
    """PCA colour augmentation of AlexNet (Krizhevsky et al. 2012, section 4.1).

    To every pixel of image ``n`` add the same RGB vector

        delta_n = sum_i alpha_{n,i} * lambda_i * p_i = P (alpha_n * lambda),
        alpha_{n,i} ~ N(0, std^2), drawn once per image,

    where ``lambda_i = eigval[i]`` and ``p_i = eigvec[:, i]`` are the eigenvalues and
    eigenvectors of the 3x3 covariance of RGB pixel values over the training set, in the
    scale the batch is in when this runs (``[0, 1]`` after ``ToFloat``, as ``pca_lighting``
    computes them). Without ``eigval``/``eigvec`` the ImageNet values are used
    (``IMAGENET_EIGVAL``, ``IMAGENET_EIGVEC``). The shift over images has covariance
    ``std^2 * sum_i lambda_i^2 p_i p_i^T``.
    """

    def __init__(self, std=0.1, eigval=None, eigvec=None):
        self.std = check_number('Lighting', 'std', std, 0, np.inf, high_open=True)
        self.eigval = _finite('Lighting', 'eigval', IMAGENET_EIGVAL if eigval is None
                              else eigval, np.float64)
        self.eigvec = _finite('Lighting', 'eigvec', IMAGENET_EIGVEC if eigvec is None
                              else eigvec, np.float64)
        if self.eigval.shape != (3,) or self.eigvec.shape != (3, 3):
            raise ValueError(f"Lighting: expected eigval of shape (3,) and eigvec of shape "
                             f"(3, 3), got {self.eigval.shape} and {self.eigvec.shape}")

    def shifts(self, n, rng):
        """The ``(n, 3)`` RGB shifts ``delta_n`` for ``n`` images (what ``__call__`` adds)."""
        alpha = rng.normal(0.0, self.std, size=(n, 3))
        return (alpha * self.eigval) @ self.eigvec.T

    def __call__(self, x, rng):
        _check_batch('Lighting', x, channels=3, floating=True)
        _check_rng('Lighting', rng)
        delta = self.shifts(len(x), rng).astype(x.dtype)
        return x + delta[:, :, None, None]

    def __repr__(self):
        return (f"Lighting(std={self.std}, eigval={np.round(self.eigval, 4).tolist()}, "
                f"eigvec={np.round(self.eigvec, 4).tolist()})")


# ----------------------------------------------------------------------------- statistics
def _pixel_moments(images, sample, seed, who):
    """Count, sum and sum of outer products of the RGB pixels of (a sample of) ``images``,
    in the [0, 1] scale (uint8 / 255; float images are taken as they are), in float64."""
    _check_batch(who, images)
    if sample is not None:
        sample = check_int(who, 'sample', sample, 1)
    seed = check_int(who, 'seed', seed, 0)
    n = len(images)
    if sample is not None and sample < n:
        index = np.sort(np.random.default_rng(seed).choice(n, size=int(sample), replace=False))
    else:
        index = np.arange(n)
    scale = 1 / 255 if images.dtype == np.uint8 else 1.0
    c = images.shape[1]
    count, total, outer = 0, np.zeros(c), np.zeros((c, c))
    for start in range(0, len(index), 1024):  # bounded memory: 1024 images at a time
        chunk = images[index[start:start + 1024]].astype(np.float64) * scale
        pixels = chunk.transpose(0, 2, 3, 1).reshape(-1, c)
        count += len(pixels)
        total += pixels.sum(0)
        outer += pixels.T @ pixels
    if count == 0:
        raise ValueError(f"{who}: no images in a batch of shape {images.shape}")
    return count, total, outer


def channel_stats(images, sample=None, seed=0):
    """Per-channel ``(mean, std)`` of the pixels in the [0, 1] scale (float32 arrays), from
    all images or a random ``sample`` of them: the arguments of ``Normalize``."""
    count, total, outer = _pixel_moments(images, sample, seed, 'channel_stats')
    mean = total / count
    var = np.diag(outer) / count - mean ** 2
    return mean.astype(np.float32), np.sqrt(np.maximum(var, 0)).astype(np.float32)


def pca_lighting(images, sample=10000, seed=0):
    """``(eigval, eigvec)`` of the 3x3 covariance of RGB pixel values, for ``Lighting``.

    ``images``: uint8 ``(N, 3, H, W)``; pixels are taken in the [0, 1] scale (``x / 255``),
    the scale ``Lighting`` runs in after ``ToFloat``. ``sample`` random images (chosen with
    ``seed``; ``None`` for all) give the covariance

        Sigma = 1/M sum_m (x_m - mu)(x_m - mu)^T   over all M pixels x_m in R^3,

    decomposed as ``Sigma = P diag(lambda) P^T``. Returns float32 ``eigval`` in descending
    order and ``eigvec`` with the matching unit eigenvectors as columns (each up to sign).
    """
    _check_batch('pca_lighting', images, channels=3)
    count, total, outer = _pixel_moments(images, sample, seed, 'pca_lighting')
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    eigval, eigvec = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigval)[::-1]
    return eigval[order].astype(np.float32), eigvec[:, order].astype(np.float32)


# ----------------------------------------------------------------------------- pipelines
def train_transform(mean, std, crop=32, padding=4, flip=True, lighting=None):
    """The standard training pipeline: ``RandomCrop(crop, padding)``, optionally
    ``RandomHorizontalFlip()``, ``ToFloat()``, optionally ``lighting`` (e.g. a ``Lighting``),
    ``Normalize(mean, std)`` with ``mean``/``std`` in the [0, 1] scale."""
    steps = [RandomCrop(crop, padding)]
    if flip:
        steps.append(RandomHorizontalFlip())
    steps.append(ToFloat())
    if lighting is not None:
        steps.append(lighting)
    steps.append(Normalize(mean, std))
    return Compose(steps)


def eval_transform(mean, std, crop=None):
    """The evaluation pipeline: optionally ``CenterCrop(crop)``, ``ToFloat()``,
    ``Normalize(mean, std)``; nothing random."""
    steps = [CenterCrop(crop)] if crop is not None else []
    return Compose(steps + [ToFloat(), Normalize(mean, std)])
