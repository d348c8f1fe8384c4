"""VGG (Simonyan & Zisserman, 2015): configurations A to E of the paper's Table 1.

Every convolution is 3x3, stride 1, pad 1 (spatial size kept), followed by ReLU; 'M' is a
2x2 max-pool with stride 2 (size halved); C adds 1x1 convolutions ('1x1' entries). At 224
input the five pools give 7x7x512 = 25088 features -> FC 4096 -> FC 4096 -> classes, with
dropout 0.5 before the hidden FC layers' outputs. A-LRN inserts LRN after the first layer.
Parameters (1000 classes): A 132,863,336, B 133,047,848, C 133,638,952, D 138,357,544,
E 143,667,240. The CIFAR variants keep the convolutions (32 -> 1x1x512 after five pools)
with a small classifier 512 -> 512 -> classes.
"""
import minidl.nn as nn

CONFIGS = {
    'A': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'B': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'C': [64, 64, 'M', 128, 128, 'M', 256, 256, '1x1', 'M', 512, 512, '1x1', 'M',
          512, 512, '1x1', 'M'],
    'D': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
          512, 512, 512, 'M'],
    'E': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M'],
}


def make_features(config, batch_norm=False, lrn_after_first=False, in_channels=3):
    layers, channels = [], in_channels
    for item in config:
        if item == 'M':
            layers.append(nn.MaxPool2d(2, 2))
            continue
        kernel, out = (1, channels) if item == '1x1' else (3, item)
        layers.append(nn.Conv2d(channels, out, kernel, padding=kernel // 2))
        layers += [nn.BatchNorm2d(out)] if batch_norm else []
        layers.append(nn.ReLU())
        if lrn_after_first and len(layers) == (3 if batch_norm else 2):  # after conv1 + ReLU
            layers.append(nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0))
        channels = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``VGG('D')`` is VGG16. ``cifar=True`` builds the 32x32 variant with a small classifier."""

    def __init__(self, config='D', num_classes=1000, batch_norm=False, lrn=False, cifar=False,
                 dropout=0.5, in_channels=3):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"VGG: unknown configuration {config!r}; known: {sorted(CONFIGS)}")
        self.features = make_features(CONFIGS[config], batch_norm, lrn, in_channels)
        if cifar:
            self.classifier = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(512, 512), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(512, num_classes))
        else:
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
                nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten())
