"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) and its 32x32 adaptations.

ImageNet network at 224x224 (the paper says 224; the arithmetic needs 227 without padding,
so conv1 pads by 2, as torchvision does):

| layer | output (C x H x W) | note |
|---|---|---|
| conv1 96 11x11 /4 pad 2, ReLU, LRN | 96 x 55 x 55 | (224 + 4 - 11) / 4 + 1 = 55 |
| maxpool 3 /2 | 96 x 27 x 27 | overlapping pooling (paper section 3.4) |
| conv2 256 5x5 pad 2, ReLU, LRN | 256 x 27 x 27 | groups=2 in the two-GPU net |
| maxpool 3 /2 | 256 x 13 x 13 | |
| conv3 384 3x3 pad 1, ReLU | 384 x 13 x 13 | sees both GPUs' halves |
| conv4 384 3x3 pad 1, ReLU | 384 x 13 x 13 | groups=2 in the two-GPU net |
| conv5 256 3x3 pad 1, ReLU | 256 x 13 x 13 | groups=2 in the two-GPU net |
| maxpool 3 /2 | 256 x 6 x 6 | 9216 features |
| dropout, FC 4096, ReLU, dropout, FC 4096, ReLU, FC classes | | |

LRN: size 5, alpha 1e-4, beta 0.75, k 2 (paper section 3.3). Parameters: 62,378,344
(one GPU) and 60,965,224 (two-GPU split).
"""
import math
import numbers

import minidl
import minidl.nn as nn
from minidl.kernels.winograd import check_tile


def paper_init_(model, biases_one):
    """The paper's initialisation: weights N(0, 0.01); biases 1 in ``biases_one`` (conv2,
    conv4, conv5 and the hidden FC layers), 0 elsewhere."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if m in biases_one else 0.0)


def he_init_(model):
    """He et al. (2015) initialisation for ReLU networks: weights N(0, 2/fan_in), biases 0,
    so each layer keeps the variance of the signal. Deep ReLU stacks then start learning at
    once, where PyTorch's default (+-1/sqrt(fan_in), a third of that variance) shrinks the
    signal layer by layer."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
            nn.init.zeros_(m.bias)


class AlexNet(nn.Module):
    """The ImageNet AlexNet; ``two_gpu=True`` reproduces the original two-GPU connectivity
    with grouped convolutions; ``init='paper'`` uses the paper's initialisation."""

    def __init__(self, num_classes=1000, two_gpu=False, init='default', dropout=0.5,
                 in_channels=3):
        super().__init__()
        g = 2 if two_gpu else 1
        lrn = lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4, padding=2), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=g), nn.ReLU(), lrn(), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=g), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=g), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes))
        if init == 'paper':
            f, c = self.features, self.classifier
            paper_init_(self, biases_one=[f[4], f[10], f[12], c[1], c[4]])

    def forward(self, x):
        return self.classifier(self.features(x).flatten())


class AlexNetCIFAR(nn.Module):
    """AlexNet scaled to 32x32 images: 3x3 first convolution (stride 1), the same five-conv
    / overlapping-pool structure, optional LRN, a smaller classifier.

    32 -conv1 64-> 32 -pool 3/2-> 15 -conv2 192-> 15 -pool-> 7 -conv3..5 (384, 256, 256)->
    7 -pool-> 3: 256*3*3 = 2304 features -> FC 1024 -> FC 1024 -> classes.

    ``winograd=4`` (default): conv2..5 go through Winograd's F(4x4, 3x3)
    (``minidl.winograd_tile``), a training step 1.2x faster than with F(2x2) on 2 cores, for
    logits about 2x further from float64 than PyTorch's float32 ones (1.4e-6 of the largest
    against 7.7e-7; docs/performance.md); ``winograd=2`` keeps F(2x2) (conv3..5), as
    precise as im2col, ``winograd=0`` im2col only.
    """

    def __init__(self, num_classes=10, lrn=True, dropout=0.5, width=1.0, in_channels=3,
                 init='he', winograd=4):
        super().__init__()
        self.winograd = check_tile('AlexNetCIFAR', winograd)
        if isinstance(width, bool) or not isinstance(width, numbers.Real) or \
                not (math.isfinite(width) and width > 0):
            raise ValueError(f"AlexNetCIFAR: width must be a positive number, got {width!r}")
        c1, c2, c3, c4, c5 = (max(8, int(c * width)) for c in (64, 192, 384, 256, 256))
        norm = (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)) if lrn else nn.Identity
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), norm(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), norm(), nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c4, c5, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c5 * 3 * 3, 1024), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(1024, 1024), nn.ReLU(),
            nn.Linear(1024, num_classes))
        if init == 'he':
            he_init_(self)

    def forward(self, x):
        with minidl.winograd_tile(self.winograd):  # (backward takes the same road)
            return self.classifier(self.features(x).flatten())

    def extra_repr(self):
        return f"winograd={self.winograd}"


class AlexNetCIFAR2Class(nn.Module):
    """The airplane-vs-ship network of the blog study: conv 48 3x3, pool 2/2, conv 128 5x5,
    pool 2/2, three conv 128 3x3, pool 2/2, FC 200, FC 30, out 2; zero ("same") padding.

    32 -> 32 -pool-> 16 -> 16 -pool-> 8 -> 8 -> 8 -> 8 -pool-> 4: 128*4*4 = 2048 features.
    """

    def __init__(self, num_classes=2, dropout=0.5, in_channels=3, init='he'):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 48, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(48, 128, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(128 * 4 * 4, 200), nn.ReLU(),
            nn.Linear(200, 30), nn.ReLU(), nn.Linear(30, num_classes))
        if init == 'he':
            he_init_(self)

    def forward(self, x):
        return self.classifier(self.features(x).flatten())
