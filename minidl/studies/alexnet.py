"""Studies of the AlexNet paper's claims (Krizhevsky, Sutskever and Hinton, 2012)."""
import numpy as np

from .. import nn
from .base import study


def four_layer_cnn(activation='relu', lrn=False, pool=(3, 2)):
    """A small CNN like the paper's Fig. 1 net: three 5x5 conv layers (32, 32, 64 channels),
    each followed by the activation and a max-pool, then one fully connected layer."""
    act = {'relu': nn.ReLU, 'tanh': nn.Tanh}[activation]
    k, s = pool
    layers, channels, size = [], 3, 32
    for i, width in enumerate((32, 32, 64)):
        layers += [nn.Conv2d(channels, width, 5, padding=2), act()]
        if lrn and i < 2:
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))  # the paper's
        layers.append(nn.MaxPool2d(k, s))
        channels, size = width, (size - k) // s + 1
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, 10))


def _epochs_to(history, target):
    """The first epoch (1-based) whose training error is at most ``target``, else None."""
    return next((h['epoch'] for h in history if h['train_error'] <= target), None)


@study('relu-vs-tanh',
       claim='A 4-layer CNN with ReLUs reaches 25% training error on CIFAR-10 six times '
             'faster than the same net with tanh (learning rates chosen separately, no '
             'regularisation).',
       source='AlexNet paper, section 3.1 and Figure 1',
       paper={'epochs_to_25pct_relu': 6, 'epochs_to_25pct_tanh': 36, 'ratio': 6.0})
def relu_vs_tanh(ctx):
    n_train, n_test, epochs = (600, 200, 2) if ctx.quick else (5000, 1000, 25)
    target = 0.25
    data = ctx.cifar(n_train, n_test)
    sweep_data = tuple(a[:len(a) // (1 if ctx.quick else 2)] for a in data)
    candidates = (0.01, 0.03) if ctx.quick else (0.003, 0.01, 0.03, 0.1)
    curves, lrs, reached = {}, {}, {}
    for act in ('relu', 'tanh'):
        # the paper chose each net's learning rate to train fastest: one epoch per candidate
        # on part of the data, keep the lowest final training loss
        losses = {lr: ctx.train(four_layer_cnn(act), sweep_data, 1, lr)[-1]['train_loss']
                  for lr in candidates}
        lrs[act] = min(losses, key=lambda lr: losses[lr] if np.isfinite(losses[lr]) else 1e9)
        history = ctx.train(four_layer_cnn(act), data, epochs, lrs[act],
                            stop=lambda h: h[-1]['train_error'] <= target)
        curves[act] = history
        reached[act] = _epochs_to(history, target)
        ctx.log(f"  {act}: lr {lrs[act]}, training error per epoch "
                f"{[round(h['train_error'], 3) for h in history]}")
    ctx.plot_lines('training-error.png',
                   {f"{act} (lr {lrs[act]})": ([h['epoch'] for h in curves[act]],
                                               [h['train_error'] for h in curves[act]])
                    for act in curves},
                   'epoch', 'training error', 'ReLU vs tanh (AlexNet Fig. 1)', hline=target)
    relu, tanh = reached['relu'], reached['tanh']
    ratio = tanh / relu if relu and tanh else None
    if ratio:
        verdict = f"ReLU reached 25% training error in {relu} epochs, tanh in {tanh}: " \
                  f"{ratio:.1f}x faster (the paper: about 6x)."
    elif relu:
        verdict = f"ReLU reached 25% training error in {relu} epochs; tanh did not within " \
                  f"{len(curves['tanh'])} (ratio > {len(curves['tanh']) / relu:.1f}x; the paper: 6x)."
    else:
        verdict = "Neither net reached 25% training error in this run " \
                  f"({n_train} images, {epochs} epochs): too short to compare with the paper."
    if not ctx.quick:
        verdict += f" Trained on {n_train} of the 50,000 images with momentum 0.9; the paper " \
                   "used all of them, so the epochs are not comparable one to one."
    return {'learning_rates': lrs, 'epochs_to_25pct': reached, 'ratio': ratio,
            'curves': curves, 'verdict': verdict}
