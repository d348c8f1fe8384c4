"""What every study shares: the registry, CIFAR-10 subsets as arrays, a small training loop,
the result file and line plots.

A study is a function ``study(ctx) -> dict`` registered with ``@study(name, claim, source,
paper)``. It trains and measures through ``ctx`` (``ctx.quick``, ``ctx.seeds``,
``ctx.cifar``, ``ctx.train``, ``ctx.plot_lines``) and returns its measured numbers and a
``verdict`` (one or two sentences that say where ours agrees with the paper, and where not,
and why it may differ). ``run`` adds the settings, the paper's numbers and the time, and
writes ``out/result.json``.
"""
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from .. import functional as F
from .. import optim, random
from ..files import atomic_write
from ..nn import Module
from ..tensor import Tensor, no_grad
from ..utils import check_bool, check_int

REGISTRY = {}
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)


@dataclass
class Study:
    name: str
    claim: str
    source: str
    paper: dict
    fn: object = field(repr=False)


def study(name, claim, source, paper):
    """Register ``fn(ctx) -> dict`` as the study ``name``."""
    def register(fn):
        REGISTRY[name] = Study(name, claim, source, paper, fn)
        return fn
    return register


@dataclass
class Context:
    """What a study may use: its settings and the shared helpers."""
    quick: bool = False
    seeds: int = 3
    device: str = 'cpu'
    out: str = '.'
    data: str = None
    log: object = print

    def cifar(self, n_train, n_test, classes=None):
        """(x_train, t_train, x_test, t_test): normalised float32 arrays of random subsets
        of CIFAR-10 (the same subsets for every call with the same sizes)."""
        from ..data import CIFAR10
        parts = []
        for train, n in ((True, n_train), (False, n_test)):
            ds = CIFAR10(root=self.data, train=train, classes=classes)
            keep = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
            x = (ds.images[keep].astype(np.float32) / 255 - CIFAR_MEAN) / CIFAR_STD
            parts += [x, ds.labels[keep]]
        return tuple(parts)

    def train(self, model, data, epochs, lr, batch_size=64, momentum=0.9, weight_decay=0.0,
              seed=0, flip=False, stop=None):
        """Train ``model`` with SGD on ``data`` = (x, t, x_test, t_test) and return one dict
        per epoch: train loss and error (as measured while training), test error, seconds.
        ``model`` may be a function that builds it: then ``seed`` also fixes its initial
        weights. ``stop(history)`` may end training early (e.g. once a target error is
        reached)."""
        x, t, x_test, t_test = data
        batch_size = min(batch_size, len(x))  # (tiny subsets in tests)
        random.manual_seed(seed)
        if not isinstance(model, Module):
            model = model()
        model.to(self.device)
        rng = np.random.default_rng(seed)
        opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                        weight_decay=weight_decay)
        history = []
        for epoch in range(epochs):
            start, order = time.perf_counter(), rng.permutation(len(x))
            loss_sum = wrong = 0.0
            model.train()
            for k in range(0, len(x) - batch_size + 1, batch_size):
                idx = order[k:k + batch_size]
                xb = x[idx][..., ::-1] if flip and epoch % 2 else x[idx]
                target = backend.to_device(t[idx], self.device)
                logits = model(Tensor(backend.to_device(np.ascontiguousarray(xb), self.device)))
                loss = F.cross_entropy(logits, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(idx)
                wrong += int((logits.data.argmax(axis=1) != target).sum())
            seen = (len(x) // batch_size) * batch_size
            history.append({'epoch': epoch + 1, 'train_loss': loss_sum / seen,
                            'train_error': wrong / seen,
                            'test_error': self.error(model, x_test, t_test),
                            'seconds': time.perf_counter() - start})
            if not np.isfinite(history[-1]['train_loss']) or (stop and stop(history)):
                break
        return history

    def error(self, model, x, t, batch_size=500):
        """The fraction of ``x`` that ``model`` (in eval mode) classifies wrongly."""
        model.eval()
        wrong = 0
        with no_grad():
            for k in range(0, len(x), batch_size):
                logits = model(Tensor(backend.to_device(x[k:k + batch_size], self.device)))
                predicted = backend.to_numpy(logits.data.argmax(axis=1))
                wrong += int((predicted != t[k:k + batch_size]).sum())
        return wrong / max(len(x), 1)

    def plot_lines(self, filename, series, xlabel, ylabel, title, hline=None, log=False):
        """A line plot of ``series`` = {label: (xs, ys)} (both axes logarithmic with
        ``log``); returns the file's path."""
        from ..plots import _figure, _save_png
        fig = _figure(figsize=(6, 4))
        ax = fig.add_subplot(1, 1, 1)
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, marker='o', markersize=3, label=label)
        if hline is not None:
            ax.axhline(hline, color='gray', linestyle=':', linewidth=1)
        if log:
            ax.set_xscale('log')
            ax.set_yscale('log')
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return _save_png(fig, os.path.join(self.out, filename), 'study')


def compare(ctx, variants, data, epochs, lr, **train_options):
    """Train every variant ({label: () -> model}) once per seed; per variant: the final
    test and training errors and their gap (mean, spread and values over the seeds), the
    per-epoch histories, and a picture of the mean error curves (``errors.png``)."""
    results, series = {}, {}
    for label, make in variants.items():
        runs = [ctx.train(make, data, epochs, lr, seed=seed, **train_options)
                for seed in range(ctx.seeds)]
        final = [r[-1] for r in runs]
        results[label] = {'test_error': mean_std([f['test_error'] for f in final]),
                          'train_error': mean_std([f['train_error'] for f in final]),
                          'gap': mean_std([f['test_error'] - f['train_error'] for f in final]),
                          'histories': runs}
        n = min(len(r) for r in runs)
        epochs_axis = list(range(1, n + 1))
        for key, name in (('test_error', 'test'), ('train_error', 'train')):
            series[f"{label}, {name}"] = (epochs_axis, [float(np.mean([r[e][key] for r in runs]))
                                                       for e in range(n)])
        ctx.log(f"  {label}: test error {results[label]['test_error']['mean']:.3f} "
                f"+- {results[label]['test_error']['std']:.3f}, gap "
                f"{results[label]['gap']['mean']:.3f} over {ctx.seeds} seed(s)")
    ctx.plot_lines('errors.png', series, 'epoch', f'error (mean of {ctx.seeds} seeds)',
                   ' vs '.join(variants))
    return results


def sizes(ctx):
    """(training images, test images, epochs) of a comparison over seeds."""
    return (200, 100, 1) if ctx.quick else (5000, 2000, 8)


def change(results, before, after):
    """(mean test error of ``after`` minus ``before``, that as text, flagged when it is
    within the spread over seeds)."""
    delta = results[after]['test_error']['mean'] - results[before]['test_error']['mean']
    spread = max(results[k]['test_error']['std'] for k in (before, after))
    return delta, f"{delta:+.3f}" + (' (within the spread over seeds)' if abs(delta) <= spread
                                     else '')


def describe(results, a, b, what='test_error'):
    """'a: 0.412 +- 0.010 against b: 0.398 +- 0.012' for the verdicts."""
    return ' against '.join(f"{k}: {results[k][what]['mean']:.3f} +- {results[k][what]['std']:.3f}"
                            for k in (a, b))


def mean_std(values):
    values = np.asarray(values, np.float64)
    return {'mean': float(values.mean()), 'std': float(values.std(ddof=1)) if len(values) > 1
            else 0.0, 'values': [float(v) for v in values]}


def run(name, quick=False, seeds=None, device='cpu', out=None, data=None, log=print):
    """Run the study ``name``; write ``out/result.json`` and its pictures; return the result."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"studies.run: unknown study {name!r}; known: "
                         f"{', '.join(sorted(REGISTRY))}")
    check_bool('studies.run: quick', quick)
    if seeds is not None:
        check_int('studies.run', 'seeds', seeds, 1)
    s = REGISTRY[name]
    out = out or os.path.join('studies', name)
    os.makedirs(out, exist_ok=True)
    ctx = Context(quick=quick, seeds=seeds or (1 if quick else 3), device=device, out=out,
                  data=data, log=log)
    start = time.perf_counter()
    measured = s.fn(ctx)
    result = {'study': name, 'claim': s.claim, 'source': s.source, 'paper': s.paper,
              'measured': {k: v for k, v in measured.items() if k != 'verdict'},
              'verdict': measured['verdict'],
              'settings': {'quick': quick, 'seeds': ctx.seeds, 'device': device},
              'seconds': round(time.perf_counter() - start, 1)}
    with atomic_write(os.path.join(out, 'result.json'), 'study') as f:
        f.write(json.dumps(result, indent=1).encode())
    return result
