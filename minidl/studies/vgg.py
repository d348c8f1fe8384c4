"""Studies of the VGG paper's claims (Simonyan and Zisserman, 2015), on narrow CIFAR-sized
versions of its configurations (a full-width VGG trains too slowly on a laptop CPU)."""
from .. import nn
from ..nn.summary import summary
from .base import change, compare, describe, sizes, study

NARROW = 8  # channels divided by this: VGG-A's 64..512 become 8..64


def narrow_vgg(config, lrn=False, pair_as_5x5=False, divide=NARROW):
    """A CIFAR-sized VGG (32x32 -> five 2x2 pools -> 1x1) with its widths divided by
    ``divide`` and a 10-way linear classifier. ``config`` is a list as in models/vgg.py;
    ``pair_as_5x5`` replaces each pair of consecutive 3x3 convolutions by one 5x5
    (the paper's check of net B, section 4.1). He initialisation, zero biases."""
    layers, channels, previous = [], 3, None
    for item in config:
        if item == 'M':
            layers.append(nn.MaxPool2d(2, 2))
            previous = None
            continue
        width = item // divide
        if pair_as_5x5 and previous == width and isinstance(layers[-2], nn.Conv2d) \
                and layers[-2].kernel_size == (3, 3):
            layers[-2] = nn.Conv2d(layers[-2].in_channels, width, 5, padding=2)
            previous = None  # the pair is used up
            continue
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        if lrn and len(layers) == 2:
            layers.append(nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0))
        channels, previous = width, width
    from models.alexnet import he_init_
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels, 10))
    he_init_(net)  # a plain net this deep trains from He's initialisation, not PyTorch's
    return net


CONFIG_A = [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']
CONFIG_B = [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M']


@study('vgg-lrn',
       claim='Local response normalisation does not improve VGG model A (A: 29.6% top-1 '
             'error, A-LRN: 29.7%).',
       source='VGG paper, section 4.1 and Table 3',
       paper={'top1_error_A': 0.296, 'top1_error_A_LRN': 0.297})
def vgg_lrn(ctx):
    n_train, n_test, epochs = sizes(ctx)
    data = ctx.cifar(n_train, n_test)
    results = compare(ctx, {'A': lambda: narrow_vgg(CONFIG_A),
                            'A-LRN': lambda: narrow_vgg(CONFIG_A, lrn=True)},
                      data, epochs, 0.02)
    _, text = change(results, 'A', 'A-LRN')
    verdict = (f"Test error {describe(results, 'A', 'A-LRN')} (VGG-A at 1/{NARROW} width, "
               f"{n_train} images, {epochs} epochs, {ctx.seeds} seeds): LRN changed it by "
               f"{text}; the paper: +0.001, i.e. no improvement.")
    return {'results': results, 'verdict': verdict}


def _weights(*layers):
    """Weights (no biases) of a stack of convolutions, counted by ``summary``."""
    net = nn.Sequential(*layers)
    rows = summary(net, (1, layers[0].in_channels, 16, 16), print_fn=lambda *a: None)
    biases = sum(m.out_channels for m in layers if isinstance(m, nn.Conv2d))
    return sum(r['params'] for r in rows) - biases


@study('small-kernels',
       claim='A stack of three 3x3 convolutions has the receptive field of one 7x7 with fewer '
             'weights (27C^2 against 49C^2) and more non-linearities; net B with each pair of '
             '3x3 layers replaced by one 5x5 has a 7% higher top-1 error.',
       source='VGG paper, sections 2.3 and 4.1',
       paper={'weights_three_3x3_per_C2': 27, 'weights_one_7x7_per_C2': 49,
              'top1_error_increase_5x5': 0.07})
def small_kernels(ctx):
    c = 64
    three = _weights(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1),
                     nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
    one = _weights(nn.Conv2d(c, c, 7, padding=3))
    n_train, n_test, epochs = sizes(ctx)
    data = ctx.cifar(n_train, n_test)
    results = compare(ctx, {'B (3x3 pairs)': lambda: narrow_vgg(CONFIG_B),
                            'B with 5x5': lambda: narrow_vgg(CONFIG_B, pair_as_5x5=True)},
                      data, epochs, 0.02)
    _, text = change(results, 'B (3x3 pairs)', 'B with 5x5')
    verdict = (f"For C = {c} channels, three 3x3 layers have {three:,} weights = "
               f"{three // c ** 2}C^2 and one 7x7 {one:,} = {one // c ** 2}C^2, as the paper "
               f"says. Test error {describe(results, 'B (3x3 pairs)', 'B with 5x5')}: the 5x5 "
               f"net's error changed by {text} (the paper: +0.07 top-1 on ImageNet, with "
               f"full widths and training).")
    return {'weights_three_3x3': three, 'weights_one_7x7': one, 'channels': c,
            'results': results, 'verdict': verdict}
