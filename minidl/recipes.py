"""Training recipes as ``Trainer`` callbacks: what airbench94 adds to plain SGD.

The recipe of ``minidl train --model vgg-fast-cifar`` (docs/fast-cifar.md) is the network
(``models/fast_cifar.py``) plus these pieces, each one switchable from the command line:

- ``param_groups``: BatchNorm biases learn ``bias_scale`` (64) times faster, with the same
  decay per step (their weight decay divided by the same factor);
- ``TriangleLR``: the learning rate of every step, 0.2 -> 1 (at 23% of the steps) -> 0.07
  times the base rate, piecewise linear;
- ``Whitening``: the frozen first layer set from the training patches before the first
  step, its bias trained for the first ``bias_epochs`` epochs only;
- ``Lookahead``: every 5 steps from epoch 3 on, the weights become an exponential average
  of themselves, with a decay that grows over training (0.95^5 * (t / T)^3).

The data side (alternating flips, reflect-padded translations) is in
``minidl.data.transforms`` and test-time augmentation in ``minidl.train.tta_logits``.
"""
import numpy as np

from .nn.module import Module
from .optim.optimizer import Optimizer
from .optim.swa_utils import LookaheadState
from .utils import check_int, check_number


def _check_type(op, name, value, cls):
    if not isinstance(value, cls):
        raise TypeError(f"{op}: {name} must be a minidl {cls.__name__}, got "
                        f"{type(value).__name__}")
    return value


def param_groups(model, lr, weight_decay, bias_scale=64.0):
    """SGD parameter groups: all trainable parameters but the BatchNorm biases at ``lr`` and
    ``weight_decay``, then the BatchNorm biases (names with 'norm') at ``lr * bias_scale``
    and ``weight_decay / bias_scale`` (the same decay per step, lr * weight_decay). Frozen parameters are left
    out, except the whitening bias, which is frozen later (``Whitening``)."""
    _check_type('param_groups', 'model', model, Module)
    check_number('param_groups', 'bias_scale', bias_scale, 0, low_open=True)
    norm, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (norm if 'norm' in name else other).append(p)
    return [dict(params=other, lr=lr, weight_decay=weight_decay),  # first: the logged lr
            dict(params=norm, lr=lr * bias_scale, weight_decay=weight_decay / bias_scale)]


def triangle(step, total, start=0.2, peak=0.23, end=0.07):
    """The learning-rate factor of step ``step`` (0-based) of ``total``: linear from
    ``start`` at step 0 to 1 at step ``int(peak * total)``, then linear to ``end`` at
    step ``total``."""
    top = int(peak * total)
    if step < top:
        return start + (1 - start) * step / top
    return 1 + (end - 1) * (step - top) / max(total - top, 1)


class TriangleLR:
    """Sets every group's lr to ``base lr * triangle(t, total)`` before each step t.
    ``total`` = epochs * steps per epoch. The base rates are the groups' ``initial_lr``
    (their rates when the first schedule was made on them, as in PyTorch); the state is
    the step count (resumed from checkpoints)."""

    def __init__(self, optimizer, total_steps, **shape):
        self.optimizer = _check_type('TriangleLR', 'optimizer', optimizer, Optimizer)
        self.total = check_int('TriangleLR', 'total_steps', total_steps, 0)
        self.shape = shape
        self.base = [group.setdefault('initial_lr', group['lr'])  # (as torch's schedulers)
                     for group in optimizer.param_groups]
        self.step = 0
        self._apply()

    def _apply(self):
        factor = triangle(min(self.step, self.total), self.total, **self.shape)
        for group, base in zip(self.optimizer.param_groups, self.base):
            group['lr'] = base * factor

    def on_step_end(self, trainer, epoch, step):
        self.step += 1
        self._apply()

    def state_dict(self):
        return {'step': self.step}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or 'step' not in state:
            raise ValueError(f"TriangleLR.load_state_dict: expected a dict with 'step', got "
                             f"{state!r:.80}")
        self.step = check_int('TriangleLR.load_state_dict', 'step', state['step'], 0)
        self._apply()


class Whitening:
    """Before the first step, set ``model.whiten`` from the first ``images`` training images
    (``whiten_init_``); train its bias for the first ``bias_epochs``
    epochs, then freeze it (its gradient, and the backward of the first layer, stop)."""

    def __init__(self, model, images, bias_epochs=3, enabled=True):
        self.model, self.images = _check_type('Whitening', 'model', model, Module), images
        self.bias_epochs = check_int('Whitening', 'bias_epochs', bias_epochs, 0)
        self.enabled = enabled

    def on_fit_start(self, trainer, resumed):
        if self.enabled and not resumed:  # (a resumed run has its whitening in the weights)
            whiten_init_(self.model.whiten, self.images)
        self.images = None  # (not needed any more)

    def on_epoch_start(self, trainer, epoch):
        self.model.whiten.bias.requires_grad = epoch < self.bias_epochs


class Lookahead:
    """Every ``every`` steps from epoch ``start_epoch`` on, replace the weights (and the
    BatchNorm statistics) by their exponential average, with decay
    ``decay ** every * (t / total) ** power`` at step t: small at first (the weights move
    fast), close to 0.95^5 at the end (a strong average). At the end of each epoch the
    model is set to the average."""

    def __init__(self, model, total_steps, start_epoch=3, every=5, decay=0.95, power=3.0):
        self.model = _check_type('Lookahead', 'model', model, Module)
        self.total = check_int('Lookahead', 'total_steps', total_steps, 0)
        self.start_epoch = check_int('Lookahead', 'start_epoch', start_epoch, 0)
        self.every = check_int('Lookahead', 'every', every, 1)
        self.decay = check_number('Lookahead', 'decay', decay, 0, 1)
        self.power = check_number('Lookahead', 'power', power, 0)
        self.steps, self.average = 0, None

    def on_step_end(self, trainer, epoch, step):
        self.steps += 1
        if epoch < self.start_epoch or self.steps % self.every:
            return
        if self.average is None:
            self.average = LookaheadState(self.model)
        else:
            rho = self.decay ** self.every * (self.steps / self.total) ** self.power
            self.average.update(self.model, rho)

    def on_epoch_end(self, trainer, epoch):
        if self.average is not None:
            self.average.update(self.model, 1.0)

    def state_dict(self):
        return {'steps': self.steps,
                'average': None if self.average is None else dict(self.average.ema)}

    def load_state_dict(self, state):
        self.steps = int(state['steps'])
        self.average = None
        if state['average'] is not None:
            self.average = LookaheadState(self.model)
            for name, array in state['average'].items():
                self.average.ema[name][...] = array


def patches(images, k):
    """Every k x k patch of a float batch (N, C, H, W), as rows (N*(H-k+1)*(W-k+1), C*k*k)."""
    n, c = images.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(2, 3))
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)


def whiten_init_(conv, images, eps=5e-4, chunk=1000):
    """Set ``conv.weight`` (2 * C*k*k filters of C x k x k) from the patch covariance.

    With Sigma = E[p p^T] over the k x k patches p of ``images`` (float, normalised,
    (N, C, H, W)) and Sigma = V diag(lambda) V^T (eigenvalues descending), filter i is
    v_i / sqrt(lambda_i + eps) and filter C*k*k + i is its negative. Then the outputs
    v_i . p / sqrt(lambda_i) are uncorrelated with unit variance: a "whitened" image.
    The covariance is accumulated in float64, ``chunk`` images at a time.
    """
    out, c, k, _ = conv.weight.shape
    d = c * k * k
    if out != 2 * d or images.ndim != 4 or images.shape[1] != c:
        raise ValueError(f"whiten_init_: expected a conv with {2 * d} filters of {c}x{k}x{k} "
                         f"and images (N, {c}, H, W), got weight {conv.weight.shape} and "
                         f"images {images.shape}")
    cov, count = np.zeros((d, d)), 0
    for start in range(0, len(images), chunk):
        p = patches(np.asarray(images[start:start + chunk], np.float64), k)
        cov += p.T @ p
        count += len(p)
    eigenvalues, eigenvectors = np.linalg.eigh(cov / count)     # ascending
    order = np.argsort(eigenvalues)[::-1]
    filters = (eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)).T
    weight = np.concatenate([filters, -filters]).reshape(2 * d, c, k, k)
    conv.weight.data[...] = weight.astype(conv.weight.dtype)
    return conv
