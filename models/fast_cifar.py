"""``vgg-fast-cifar``: the VGG-style network of airbench94 (K. Jordan, "94% on CIFAR-10 in
3.29 seconds on a single GPU", 2024), built from minidl layers.

| layer | output (C x H x W) | note |
|---|---|---|
| whitening conv 3 -> 24, 2x2, no padding, GELU | 24 x 31 x 31 | weight frozen (``whiten_init_``) |
| group 1: conv 64 -> pool 2 -> BN -> GELU -> conv 64 -> BN -> GELU | 64 x 15 x 15 | |
| group 2: the same, width 256 | 256 x 7 x 7 | |
| group 3: the same, width 256 | 256 x 3 x 3 | |
| max-pool 3, flatten, linear 256 -> 10 without bias, times 1/9 | 10 | |

Every 3x3 convolution has ``padding='same'``, no bias, and starts as the identity on its
first ``in_channels`` outputs (``nn.init.dirac_``: an implicit residual connection at the
start). BatchNorm keeps its weight at 1 (``requires_grad = False``) and trains its bias;
eps 1e-12, running statistics updated with momentum 0.4 (airbench's "0.6" is the weight of
the old statistics). The 1/9 on the logits stands in for a temperature.

``channels_last`` (default): the input is laid out NHWC in memory (``Tensor.contiguous``),
as airbench runs it on the GPU; every layer keeps that layout, and minidl's convolutions
are faster on it (docs/fast-cifar.md). The numbers are the same in either layout.

``winograd=4`` (default): its 3x3 convolutions of 64 or more channels on both sides go
through Winograd's F(4x4, 3x3) (``minidl.winograd_tile``), 4x fewer multiplications than
im2col, for a float32 rounding error 5-10x im2col's (4e-6 of the largest output at 256
channels; docs/fast-cifar.md measures both); ``winograd=2`` keeps F(2x2) (128 channels
and more), as precise as im2col, and ``winograd=0`` uses im2col only.

The first layer is not learned: ``minidl.recipes.whiten_init_`` sets its 2 * 12 filters
to the eigenvectors of the covariance of the 2x2x3 training patches, each scaled by
1/sqrt(eigenvalue + eps), and their negatives, so that after it the patches are
decorrelated and of unit variance (and GELU sees both signs). The recipe
(``minidl.recipes.Whitening``) computes it from the training images the first time it
trains, and trains only its bias, for the first epochs.
"""
import minidl
import minidl.nn as nn
from minidl import Tensor
from minidl.kernels.winograd import check_tile
from minidl.utils import check_int


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU."""

    def __init__(self, in_channels, out_channels, bn_momentum=0.4, bn_eps=1e-12):
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _batch_norm(out_channels, bn_momentum, bn_eps)
        self.conv2 = _conv(out_channels, out_channels)
        self.norm2 = _batch_norm(out_channels, bn_momentum, bn_eps)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


def _conv(in_channels, out_channels):
    """3x3 'same' convolution without bias, the identity on its first in_channels outputs."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding='same', bias=False)
    nn.init.dirac_(Tensor(conv.weight.data[:in_channels]))  # (a view: written in place)
    return conv


def _batch_norm(channels, momentum, eps):
    norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum)
    norm.weight.requires_grad = False  # stays 1: only the bias (a per-channel shift) learns
    return norm


class FastCIFAR(nn.Module):
    """The airbench94 network; ``widths`` of the three groups (64, 256, 256)."""

    def __init__(self, num_classes=10, in_channels=3, widths=(64, 256, 256), whiten_kernel=2,
                 scale=1 / 9, bn_momentum=0.4, channels_last=True, winograd=4):
        super().__init__()
        num_classes = check_int('FastCIFAR', 'num_classes', num_classes, 1)
        k = check_int('FastCIFAR', 'whiten_kernel', whiten_kernel, 1)
        channels = 2 * in_channels * k * k
        self.whiten = nn.Conv2d(in_channels, channels, k, bias=True)
        nn.init.zeros_(self.whiten.bias)
        self.whiten.weight.requires_grad = False
        self.act = nn.GELU()
        groups = []
        for width in widths:
            groups.append(ConvGroup(channels, width, bn_momentum))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(channels, num_classes, bias=False)
        self.scale = float(scale)
        self.channels_last = bool(channels_last)
        self.winograd = check_tile('FastCIFAR', winograd)

    def forward(self, x):
        if self.channels_last:  # NHWC memory from here on: the convolutions' fast layout
            x = x.contiguous(memory_format='channels_last')
        with minidl.winograd_tile(self.winograd):  # (backward takes the same road)
            x = self.groups(self.act(self.whiten(x)))
        return self.head(self.pool(x).flatten()) * self.scale

    def extra_repr(self):
        return f"scale={self.scale:.4g}, winograd={self.winograd}"
