"""A one-minute demonstration: a small CNN learns to tell stripe orientations apart.

    minidl demo [--epochs 5] [--seed 0]        (or python -m minidl demo ...)

Everything is plain minidl: tensors with requires_grad as parameters, conv2d, max_pool2d,
relu, linear, softmax_cross_entropy, backward, and a hand-written SGD step, on synthetic
images (no data to download). ``minidl train`` trains the model zoo on CIFAR-10 and
Fashion-MNIST. ``--epochs`` must be a positive integer and ``--seed`` a non-negative one;
anything else is one error line and exit status 2.
"""
import time

import numpy as np

from . import functional as F
from .random import manual_seed
from .tensor import Tensor, no_grad

CLASSES = ('horizontal', 'vertical', 'diagonal', 'anti-diagonal')


def make_stripes(n, rng, size=16):
    """n noisy 1x16x16 images of stripes in one of four orientations, and their labels."""
    labels = rng.integers(len(CLASSES), size=n)
    i, j = np.mgrid[:size, :size]
    coord = np.stack([i, j, i + j, i - j])[labels]  # the varying coordinate per orientation
    period = rng.integers(3, 6, size=(n, 1, 1))
    phase = rng.integers(0, 6, size=(n, 1, 1))
    images = ((coord + phase) % period < period / 2).astype(np.float32)
    images += rng.normal(0, 0.5, images.shape).astype(np.float32)
    return images[:, None], labels


def init_params(rng):
    def param(*shape, fan_in):
        return Tensor((rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32),
                      requires_grad=True)
    return {'w1': param(8, 1, 3, 3, fan_in=9), 'b1': param(8, fan_in=1e9),
            'w2': param(16, 8, 3, 3, fan_in=72), 'b2': param(16, fan_in=1e9),
            'w3': param(4, 16 * 4 * 4, fan_in=256), 'b3': param(4, fan_in=1e9)}


def forward(p, x):
    h = F.max_pool2d(F.relu(F.conv2d(x, p['w1'], p['b1'], padding=1)), 2)  # 8x8
    h = F.max_pool2d(F.relu(F.conv2d(h, p['w2'], p['b2'], padding=1)), 2)  # 4x4
    return F.linear(F.flatten(h), p['w3'], p['b3'])


def add_arguments(parser):
    """The demo's options, on its own parser or on `minidl demo`'s."""
    parser.add_argument('--epochs', type=int, default=5, help='passes over the 2048 '
                        'training images (default 5)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the images, the '
                        'initial weights and the order (default 0)')


def check(args):
    """What is wrong with the parsed options, as one line; None when nothing is."""
    if args.epochs < 1:
        return f"--epochs must be a positive integer, got {args.epochs}"
    if args.seed < 0:
        return f"--seed must be a non-negative integer, got {args.seed}"
    return None


def main(argv=None):
    """`minidl demo` from a list of arguments; returns the final test accuracy. Bad
    options: one error line and SystemExit(2), as from the command."""
    from .cli import ArgumentParser
    parser = ArgumentParser(prog='minidl demo', description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    problem = check(args)
    if problem:
        parser.exit(2, f"{parser.prog}: error: {problem}\n")
    return run(args.epochs, args.seed)


def run(epochs=5, seed=0):
    """Train the small CNN for ``epochs`` epochs, printing one line each; returns the final
    test accuracy."""
    if epochs < 1:
        raise ValueError(f"demo: epochs must be a positive integer, got {epochs}")
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = make_stripes(2048, rng)
    x_test, y_test = make_stripes(512, rng)
    params = init_params(rng)
    lr, batch = 0.05, 64
    print(f"demo: {len(x_train)} training images of {len(CLASSES)} stripe orientations")
    for epoch in range(1, epochs + 1):
        start, order, total = time.perf_counter(), rng.permutation(len(x_train)), 0.0
        for k in range(0, len(order), batch):
            idx = order[k:k + batch]
            loss = F.softmax_cross_entropy(forward(params, Tensor(x_train[idx])), y_train[idx])
            for p in params.values():
                p.grad = None
            loss.backward()
            with no_grad():
                for p in params.values():
                    p.data -= lr * p.grad.data
            total += loss.item() * len(idx)
        with no_grad():
            pred = forward(params, Tensor(x_test)).numpy().argmax(axis=1)
        print(f"epoch {epoch}: train loss {total / len(order):.4f}, test accuracy "
              f"{(pred == y_test).mean():.1%} ({time.perf_counter() - start:.1f} s)")
    return float((pred == y_test).mean())
