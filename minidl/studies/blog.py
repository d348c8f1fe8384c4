"""Studies of the lessons of the blog our main job follows (AlexNet-style CNN, airplane vs
ship on CIFAR-10): weight scale at initialisation, and where the training time goes."""
import os
import time

import numpy as np

from .. import functional as F
from .. import nn, random
from ..tensor import Tensor
from .base import compare, describe, study


def _blog_net():
    import models
    return models.build('alexnet-cifar-2class')


# ----------------------------------------------------------------------------- init-scale
def _init_normal(model, scale):
    """Every conv and linear weight from N(0, (scale * sqrt(2 / fan_in))^2), every bias 0:
    ``scale`` times He's initialisation, which keeps the activations' size from layer to
    layer (scale 1); a net of L layers multiplies its logits by about scale^L."""
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight.data[0].size
            m.weight.data[...] = rng.normal(0, scale * np.sqrt(2 / fan_in), m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = 0


@study('init-scale',
       claim='A too-large initial weight scale drives the softmax inputs to extremes (a '
             'range of 20 against 80 in the blog) and the gradient to nearly zero.',
       source="the blog's lesson 2 (weight initialisation)",
       paper={'softmax_input_range_good': 20, 'softmax_input_range_too_large': 80})
def init_scale(ctx):
    scales = (0.5, 2.0) if ctx.quick else (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
    n_train, n_test, epochs = (128, 64, 1) if ctx.quick else (2000, 500, 2)
    data = ctx.cifar(n_train, n_test, classes=('airplane', 'ship'))
    x, t = data[0][:64], data[1][:64]
    rows = []
    for scale in scales:
        random.manual_seed(0)
        model = _blog_net()
        _init_normal(model, scale)
        model.train()
        logits = model(Tensor(x))
        loss = F.cross_entropy(logits, t)
        loss.backward()
        p = F.softmax(logits, axis=1).data
        weights = [(n, m.weight) for n, m in model.named_modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear))]
        norms = {n: float(np.linalg.norm(w.grad.data)) for n, w in weights}  # at init
        history = ctx.train(model, data, epochs, lr=0.01)
        rows.append({'scale': scale,
                     'softmax_input_range': float(logits.data.max() - logits.data.min()),
                     'saturated_fraction': float((p.max(axis=1) > 0.999).mean()),
                     'initial_loss': loss.item(), 'grad_norms': norms,
                     'loss_per_epoch': [h['train_loss'] for h in history],
                     'test_error': history[-1]['test_error']})
        ctx.log(f"  scale {scale}: softmax input range {rows[-1]['softmax_input_range']:.3g}, "
                f"first-layer gradient norm {rows[-1]['grad_norms'][weights[0][0]]:.3g}, "
                f"loss after training {rows[-1]['loss_per_epoch'][-1]:.3g}")
    first, last = weights[0][0], weights[-1][0]
    ctx.plot_lines('init-scale.png',
                   {'softmax input range (max - min logit)':
                    (scales, [r['softmax_input_range'] for r in rows]),
                    f'gradient norm, first layer ({first})':
                    (scales, [r['grad_norms'][first] for r in rows]),
                    f'gradient norm, last layer ({last})':
                    (scales, [r['grad_norms'][last] for r in rows])},
                   'weight scale (times He initialisation)', 'value (log scale)',
                   'Initial weight scale: logits and gradients', log=True)
    big, small = rows[-1], rows[0]
    verdict = (f"From scale {small['scale']} to {big['scale']} the softmax inputs spread from "
               f"{small['softmax_input_range']:.3g} to {big['softmax_input_range']:.3g} and "
               f"{big['saturated_fraction']:.0%} of the softmax outputs saturate (> 0.999); "
               f"the first layer's gradient norm goes from {small['grad_norms'][first]:.3g} to "
               f"{big['grad_norms'][first]:.3g}. ")
    losses = ', '.join(f"{r['scale']}x: {r['loss_per_epoch'][-1]:.3g}" for r in rows)
    losses = losses.replace('nan', 'not finite (diverged)')
    verdict += (f"Training loss after {epochs} epoch(s) at each scale: {losses} (ln 2 = 0.693 "
                f"is chance for two classes). With ReLUs the logits grow as about scale^L "
                f"over the L = 8 layers, so too large a scale saturates the softmax and too "
                f"small a one starves the first layers of gradient.")
    return {'rows': rows, 'verdict': verdict}


# ----------------------------------------------------------------------------- where-time-goes
def _median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def layer_times(model, x, repeat):
    """[(name, kind, forward ms, backward ms)] of every leaf layer of ``model``, each timed
    alone at the input it gets in the model (backward: input and parameter gradients)."""
    inputs, handles = {}, []

    def keep_input(name):
        def hook(module, args, output):
            inputs[name] = args[0].data  # (a hook that returns a value replaces the output)
        return hook
    for name, m in model.named_modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(keep_input(name)))
    model.train()
    model(Tensor(x))
    for h in handles:
        h.remove()
    rows = []
    for name, m in model.named_modules():
        if name not in inputs or isinstance(m, nn.Dropout):
            continue
        a = inputs[name]
        data = a is inputs[next(iter(inputs))]  # the images: no gradient, as in training

        def forward():
            return m(Tensor(a, requires_grad=not data))

        g = Tensor(np.ones(forward().shape, a.dtype))

        def backward():
            y = forward()
            y.backward(g)
        fwd = _median_ms(forward, repeat)
        rows.append((name, type(m).__name__, fwd, max(_median_ms(backward, repeat) - fwd, 0.0)))
    return rows


@study('where-time-goes',
       claim="About 70% of the blog's training time went into the convolution's backward pass.",
       source="the blog's lesson 3 (profiling)",
       paper={'conv_backward_share': 0.70})
def where_time_goes(ctx):
    import models
    batch, repeat = (4, 1) if ctx.quick else (64, 5)
    shares = {}
    for name in ('alexnet-cifar-2class', 'alexnet-cifar'):
        random.manual_seed(0)
        model = models.build(name, width=0.25) if ctx.quick and name == 'alexnet-cifar' \
            else models.build(name)
        x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        rows = layer_times(model, x, repeat)
        total = sum(f + b for _, _, f, b in rows)
        conv_bwd = sum(b for _, kind, _, b in rows if kind == 'Conv2d')
        conv_fwd = sum(f for _, kind, f, _ in rows if kind == 'Conv2d')
        shares[name] = {'conv_backward_share': conv_bwd / total,
                        'conv_forward_share': conv_fwd / total,
                        'layers': [{'layer': n, 'type': k, 'forward_ms': f, 'backward_ms': b}
                                   for n, k, f, b in rows], 'batch': batch}
        _plot_layers(ctx, f'{name}-layers.png', name, rows)
        ctx.log(f"  {name}: conv backward {conv_bwd / total:.0%}, conv forward "
                f"{conv_fwd / total:.0%} of the layers' time")
    blog, other = shares['alexnet-cifar-2class'], shares['alexnet-cifar']
    own = blog['conv_backward_share'] / (blog['conv_backward_share'] +
                                         blog['conv_forward_share'])
    verdict = (f"On this CPU the convolutions' backward takes {blog['conv_backward_share']:.0%} "
               f"of the layers' time for the blog's net and "
               f"{other['conv_backward_share']:.0%} for alexnet-cifar (the blog: about 70%). "
               f"Of the convolutions' own time, backward is {own:.0%}: it computes two "
               f"products per layer (input and weight gradients) where forward computes one, "
               f"so the arithmetic alone predicts about two thirds; the rest of the step is "
               f"pooling, LRN, ReLU and the fully connected layers.")
    return {'models': shares, 'verdict': verdict}


def _plot_layers(ctx, filename, title, rows):
    from ..plots import _figure, _save_png
    fig = _figure(figsize=(7, 0.35 * len(rows) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{n} {k}" for n, k, _, _ in rows][::-1]
    fwd = [f for _, _, f, _ in rows][::-1]
    bwd = [b for _, _, _, b in rows][::-1]
    ax.barh(labels, fwd, color='tab:blue', label='forward')
    ax.barh(labels, bwd, left=fwd, color='tab:orange', label='backward')
    ax.set_xlabel('ms')
    ax.set_title(f'{title}: time per layer')
    ax.legend()
    fig.tight_layout()
    _save_png(fig, os.path.join(ctx.out, filename), 'study')


# ----------------------------------------------------------------------------- padding
def padding_net(padding):
    """Four 3x3 conv layers (32, 32, 64, 64 channels) with ReLU, a 2x2 max-pool after the
    second and the fourth, then a linear layer; with or without zero padding."""
    p = 1 if padding else 0
    layers, channels, size = [], 3, 32
    for i, width in enumerate((32, 32, 64, 64)):
        layers += [nn.Conv2d(channels, width, 3, padding=p), nn.ReLU()]
        channels, size = width, size - 2 * (1 - p)
        if i % 2:
            layers.append(nn.MaxPool2d(2, 2))
            size //= 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * size * size, 2))


def pixel_use(padding, size=32):
    """How many output positions of ``padding_net``'s convolutions read each input pixel:
    the gradient, with respect to the input, of the sum of the last conv layer's outputs
    through all-ones 3x3 kernels (and 2x2 sum-pooling), computed by autograd."""
    x = Tensor(np.ones((1, 1, size, size)), requires_grad=True)
    y, ones = x, Tensor(np.ones((1, 1, 3, 3)))
    for i in range(4):
        y = F.conv2d(y, ones, padding=1 if padding else 0)
        if i % 2:
            y = F.avg_pool2d(y, 2) * 4.0
    y.sum().backward()
    return x.grad.numpy()[0, 0]


@study('padding',
       claim='Without padding the border pixels are neglected and accuracy drops; padding '
             "lifted the blog's 7-layer net to 90.6% on airplane vs ship.",
       source="the blog's lesson 1 (padding)",
       paper={'accuracy_with_padding': 0.906})
def padding(ctx):
    n_train, n_test, epochs = (200, 100, 1) if ctx.quick else (6000, 2000, 8)
    data = ctx.cifar(n_train, n_test, classes=('airplane', 'ship'))
    results = compare(ctx, {'no padding': lambda: padding_net(False),
                                 'padding 1': lambda: padding_net(True)},
                      data, epochs, 0.01, flip=True)
    use = {k: pixel_use(k == 'padding 1') for k in ('no padding', 'padding 1')}
    _plot_use(ctx, use)
    corner = {k: float(u[0, 0] / u.max()) for k, u in use.items()}
    verdict = (f"A corner pixel is read {corner['no padding']:.2g} times as often as the "
               f"most-read pixel without padding and {corner['padding 1']:.2g} times with "
               f"it. Test error "
               f"{describe(results, 'no padding', 'padding 1')} on airplane vs ship "
               f"({n_train} images, {epochs} epochs); the blog: 90.6% accuracy with padding, "
               f"after full training of a bigger net.")
    return {'results': results, 'corner_use_relative': corner, 'verdict': verdict}


def _plot_use(ctx, use):
    from ..plots import _figure, _save_png
    fig = _figure(figsize=(7, 3.4))
    for i, (label, u) in enumerate(use.items()):
        ax = fig.add_subplot(1, 2, i + 1)
        image = ax.imshow(u / u.max(), cmap='viridis', vmin=0, vmax=1)
        ax.set_title(f'{label}: reads per pixel')
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=fig.axes, shrink=0.8, label='relative to the most-read pixel')
    _save_png(fig, os.path.join(ctx.out, 'pixel-use.png'), 'study')
