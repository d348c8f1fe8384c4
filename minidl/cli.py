"""The ``minidl`` command: train, eval, summary, plot (and the demo).

    minidl train --model alexnet-cifar --dataset cifar10
    minidl train --model alexnet-cifar-2class --dataset cifar10 --classes airplane,ship
    minidl eval --checkpoint runs/alexnet-cifar-cifar10/best.npz
    minidl summary --model vgg16
    minidl plot runs/alexnet-cifar-cifar10
    minidl study relu-vs-tanh [--quick]       (minidl study --list)
    minidl graph --model alexnet-cifar --out step.svg

Bad input (unknown model, dataset or device, impossible settings, missing data, a corrupt
run directory, and what the parser itself refuses: an unknown option or choice, a missing
or malformed value, an extra word) is a one-line error and exit status 2, never a
traceback or a usage block; a failed read or write (a full disk, no permission) is one
line naming the file and exit status 1. ``--help`` prints the whole help.
"""
import argparse
import datetime
import json
import math
import numbers
import os
import re
import sys
import warnings

import numpy as np

DATASETS = ('cifar10', 'fashion-mnist')
OPTIMIZERS = ('sgd', 'adam', 'adamw')
SCHEDULES = ('cosine', 'step', 'plateau', 'triangle', 'none')
FLIPS = ('random', 'alternating')
GENERIC = dict(dataset='cifar10', device='cpu', seed=0, epochs=10, batch_size=128,
               optimizer='sgd', lr=0.01, momentum=0.9, weight_decay=5e-4, schedule='cosine',
               warmup=0, label_smoothing=0.0)
REQUIRED = tuple(k for k in GENERIC if k != 'device') + ('model',)  # in every config.json
# what `train --resume` may change; every other setting is the run's own
RESUME_OPTIONS = ('epochs', 'device', 'data', 'out')
FLOAT_WARNINGS = r'(overflow|invalid value|divide by zero|underflow) encountered'
# Per-model defaults, so that `minidl train --model NAME` alone trains well.
MODEL_DEFAULTS = {
    'alexnet-cifar': dict(epochs=30, lr=0.02, warmup=1),
    'alexnet-cifar-2class': dict(epochs=14, batch_size=64, optimizer='adam', lr=1e-3,
                                 weight_decay=0.0, classes='airplane,ship'),
    'vgg11-bn-cifar': dict(epochs=40, lr=0.05, warmup=1),
    'vgg16-bn-cifar': dict(epochs=60, lr=0.05, warmup=1),
    'vgg11-cifar': dict(epochs=40, lr=0.01, warmup=2),
    'vgg16-cifar': dict(epochs=60, lr=0.01, warmup=2),
    # airbench94's recipe (docs/fast-cifar.md): its lr 11.5 and weight decay 0.0153 "per
    # 1024 examples" on a summed loss are lr 1.5 * batch / 1024 and weight decay
    # 0.0153 / 11.5 on our mean loss (Nesterov momentum 0.85). Batch 512, not airbench's
    # 1024: 94.15% against 93.89% in 10 epochs (one seed each, docs/results.md), and less
    # memory (when chosen it was also faster per image; since the blocked GEMMs the two
    # are within a few percent). The test set only after the last epoch (as airbench
    # times it): each test pass costs a tenth of an epoch here
    'vgg-fast-cifar': dict(epochs=10, batch_size=512, lr=0.75, momentum=0.85,
                           weight_decay=0.0153 / 11.5, schedule='triangle',
                           label_smoothing=0.2, flip='alternating', translate=2, tta=2,
                           lookahead=True, whiten=True, bias_lr_scale=64.0, eval_every=0),
}
RECIPE_ONLY = ('whiten', 'bias_lr_scale')  # settings of the vgg-fast-cifar recipe alone


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line."""


# a negative number in any notation float() reads: -1, -.5, -1e-4, -5E-4, -inf, -nan
NEGATIVE_NUMBER = re.compile(r'^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$',
                             re.IGNORECASE)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the command's rules: an error is one line (``minidl train: error:
    argument --epochs: invalid int value: 'x' (see `minidl train --help`)``, exit status
    2), not the usage block; an extra word is named by its sub-command; and a negative
    number is a value in any notation (``--weight-decay -1e-4``, ``--momentum -inf``:
    argparse alone reads only ``-1`` and ``-0.5`` as numbers, the rest as option names).
    Sub-command parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message):
        message = ' '.join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        parsed, extra = self.parse_known_args(argv, namespace)
        if extra:  # named by the sub-command they were given to (after its name)
            target = self
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    name = getattr(parsed, action.dest, None)
                    if name in argv and not set(extra) & set(argv[:argv.index(name)]):
                        target = action.choices.get(name, self)
            target.error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


# ----------------------------------------------------------------------------- set-up
def settings(args):
    """Command-line values over the model's defaults over the generic defaults."""
    merged = {**GENERIC, **MODEL_DEFAULTS.get(args.model, {})}
    given = _given(args)
    merged.update(given)
    if merged['schedule'] in ('plateau', 'triangle') and 'warmup' not in given:
        merged['warmup'] = 0  # a model's default warm-up is for its own schedule
    check_settings(merged)
    _check_used(merged, given)
    return merged


def _check_used(cfg, given):
    """UsageError for a setting given on the command line that the run would not use, or
    not as asked, naming the option it conflicts with. (Defaults are left alone: Adam
    ignoring the generic momentum 0.9 is no surprise, nor is a model's one-epoch warm-up in
    a one-epoch run.)"""
    def shown(key):
        value = cfg[key]
        text = f"--{key.replace('_', '-')} {value:g}" if isinstance(value, float) \
            else f"--{key.replace('_', '-')} {value}"
        if key in given:
            return text
        if key in MODEL_DEFAULTS.get(cfg['model'], {}):
            return f"{text} ({cfg['model']}'s default)"
        return f"{text} (the default)"

    if 'momentum' in given and cfg['optimizer'] != 'sgd':
        raise UsageError(f"{shown('momentum')} is for --optimizer sgd, and this run uses "
                         f"{shown('optimizer')}, which has no momentum setting (its betas "
                         f"are fixed at 0.9, 0.999): leave out --momentum or add "
                         f"--optimizer sgd")
    for key in ('flip', 'translate'):
        if key in given and cfg.get('augment') is False:
            raise UsageError(f"{shown(key)} is augmentation, and --no-augment turns "
                             f"augmentation off: leave out one of them")
    if given.get('warmup'):
        if cfg['schedule'] in ('plateau', 'triangle'):
            why = ('has no warm-up' if cfg['schedule'] == 'plateau'
                   else 'warms up itself')
            raise UsageError(f"--warmup does not apply to {shown('schedule')}, which {why}: "
                             f"leave out {shown('warmup')} or choose another --schedule")
        if cfg['warmup'] >= cfg['epochs']:
            raise UsageError(f"{shown('warmup')} must be shorter than {shown('epochs')}: "
                             f"the learning rate would never reach {shown('lr')} "
                             f"and the {cfg['schedule']} schedule would not begin; use "
                             f"at most {cfg['epochs'] - 1} warm-up epochs or more --epochs")


def _given(args):
    """The options given on the command line (those left out are None)."""
    return {key: value for key, value in vars(args).items()
            if value is not None and key not in ('run', 'command', 'resume')}


def check_settings(cfg, source=None):
    """UsageError for a setting that cannot be trained as asked, instead of a silently
    different run (``--train-size 0`` meaning all images, ``--width -1`` an 8-channel net).

    ``source``: None for the command line (settings named as options, ``--train-size``),
    else the file the settings were read from (``RUN/config.json``), named in the error.
    """
    import models
    missing = [key for key in REQUIRED if key not in cfg]
    if missing:
        raise UsageError(f"{source} lacks the settings {', '.join(map(repr, missing))}: "
                         f"it is not the configuration of a `minidl train` run")

    def bad(key, must):
        value = cfg[key]
        name = f"--{key.replace('_', '-')}" if source is None else f"{source}: {key!r}"
        shown = f"{value:g}" if isinstance(value, float) else repr(value)
        raise UsageError(f"{name} must {must}, got {shown}")

    def number(key):
        return isinstance(cfg[key], numbers.Real) and not isinstance(cfg[key], bool) \
            and math.isfinite(cfg[key])

    def integer(key):
        return isinstance(cfg[key], numbers.Integral) and not isinstance(cfg[key], bool)

    for key, choices in (('model', models.names()), ('dataset', DATASETS),
                         ('optimizer', OPTIMIZERS), ('schedule', SCHEDULES)):
        if cfg[key] not in choices:
            bad(key, 'be one of ' + ', '.join(choices))
    for key in ('epochs', 'batch_size'):
        if not integer(key) or cfg[key] < 1:
            bad(key, 'be a positive integer')
    for key in ('train_size', 'test_size'):
        if cfg.get(key) is not None and (not integer(key) or cfg[key] < 1):
            bad(key, 'be a positive integer')
    for key in ('seed', 'warmup'):
        if not integer(key) or cfg[key] < 0:
            bad(key, 'be a non-negative integer')
    if not number('lr') or cfg['lr'] <= 0:
        bad('lr', 'be a positive finite number')
    if not number('momentum') or not 0 <= cfg['momentum'] < 1:
        bad('momentum', 'be a number in [0, 1)')
    if not number('weight_decay') or cfg['weight_decay'] < 0:
        bad('weight_decay', 'be a non-negative finite number')
    if not number('label_smoothing') or not 0 <= cfg['label_smoothing'] <= 1:
        bad('label_smoothing', 'be a number in [0, 1]')
    if cfg.get('width') is not None and (not number('width') or cfg['width'] <= 0):
        bad('width', 'be a positive number')
    if cfg.get('classes') is not None:
        names = cfg['classes'].split(',') if isinstance(cfg['classes'], str) else []
        if len(names) < 2:
            bad('classes', 'name at least two classes')
        if not all(n.strip() for n in names):
            bad('classes', 'be comma-separated class names, none of them empty')
    for key in ('augment', 'lighting', 'lookahead', 'whiten'):
        if cfg.get(key) is not None and not isinstance(cfg[key], bool):
            bad(key, 'be true or false')
    if cfg.get('flip') is not None and cfg['flip'] not in FLIPS:
        bad('flip', 'be one of ' + ', '.join(FLIPS))
    if cfg.get('translate') is not None and (not integer('translate')
                                             or not 0 <= cfg['translate'] <= 8):
        bad('translate', 'be an integer from 0 to 8 (pixels)')
    if cfg.get('eval_every') is not None and (not integer('eval_every')
                                              or cfg['eval_every'] < 0):
        bad('eval_every', 'be an integer >= 0 (0: test after the last epoch only)')
    if cfg.get('tta') is not None and (not integer('tta') or cfg['tta'] not in (0, 1, 2)):
        bad('tta', 'be 0 (none), 1 (mirror) or 2 (mirror and translate)')
    if cfg.get('bias_lr_scale') is not None and (not number('bias_lr_scale')
                                                 or cfg['bias_lr_scale'] <= 0):
        bad('bias_lr_scale', 'be a positive number')
    for key in RECIPE_ONLY:
        if cfg.get(key) is not None and cfg['model'] != 'vgg-fast-cifar':
            name = ({'whiten': '--no-whiten'}.get(key, f"--{key.replace('_', '-')}")
                    if source is None else f"{source}: {key!r}")
            raise UsageError(f"{name} applies to vgg-fast-cifar only (its whitening layer "
                             f"and recipe), not to {cfg['model']}")
    if cfg.get('data') is not None and not isinstance(cfg['data'], str):
        bad('data', 'be a path')


def build_data(cfg, rank=0, world=1):
    """Train and test datasets and loaders for cfg (dataset, classes, augmentation...).
    With ``world`` ranks, each loader yields rank ``rank``'s shard, and the training batch
    of a rank is the global ``--batch-size`` / world."""
    from .data import CIFAR10, DataLoader, FashionMNIST, transforms as T
    classes = tuple(c.strip() for c in cfg['classes'].split(',')) if cfg.get('classes') else None
    if cfg['dataset'] == 'cifar10':
        kind, extra = CIFAR10, {'classes': classes}
    else:
        if classes:
            raise UsageError("--classes is only supported for cifar10")
        kind, extra = FashionMNIST, {}
    train = kind(root=cfg.get('data'), train=True, **extra)
    test = kind(root=cfg.get('data'), train=False, **extra)
    for key, split, dataset in (('train_size', 'training', train), ('test_size', 'test', test)):
        size = cfg.get(key)
        if size is not None and size > len(dataset):  # (not all of them, as if unset)
            subset = f" ({', '.join(dataset.classes)})" if classes else ''
            raise UsageError(f"--{key.replace('_', '-')} {size} is more than the "
                             f"{len(dataset)} {split} images of {cfg['dataset']}{subset} in "
                             f"{dataset.folder}: use at most {len(dataset)}, or leave it "
                             f"out for all of them")
    _limit(train, cfg.get('train_size'), cfg['seed'])
    _limit(test, cfg.get('test_size'), cfg['seed'])
    pad = (32 - train.images.shape[-1]) // 2  # Fashion-MNIST's 28x28 are padded to 32
    lighting = None
    if cfg.get('lighting'):
        if train.images.shape[1] != 3:
            raise UsageError("--lighting (PCA colour noise) needs RGB images (cifar10)")
        lighting = T.Lighting(0.1, *T.pca_lighting(train.images))
    augment = cfg.get('augment', True)
    translate = cfg.get('translate')
    if cfg.get('flip') == 'alternating' and augment:
        T.flip_half_(train.images, cfg['seed'])  # (in memory: the files are not touched)
        steps = [T.AlternatingFlip(), T.RandomCrop(32, pad + (translate or 0), 'reflect'),
                 T.ToFloat()] + ([lighting] if lighting is not None else [])
        train_tf = T.Compose(steps + [T.Normalize(kind.mean, kind.std)])
    else:
        train_tf = T.train_transform(kind.mean, kind.std, 32,
                                     pad + augment * (4 if translate is None else translate),
                                     flip=augment, lighting=lighting)
    test_tf = T.Compose([T.RandomCrop(32, pad), T.ToFloat(), T.Normalize(kind.mean, kind.std)])
    device, shard = cfg['device'], (rank, world) if world > 1 else None
    return (train, test,
            DataLoader(train, cfg['batch_size'] // world, shuffle=True, transform=train_tf,
                       seed=cfg['seed'], device=device, shard=shard,
                       drop_last=cfg['schedule'] == 'triangle'),
            DataLoader(test, 256, transform=test_tf, seed=cfg['seed'], device=device,
                       shard=shard))


def build_callbacks(cfg, model, optimizer, train, steps_per_epoch):
    """The Trainer callbacks of the settings: per-step lr, lookahead, whitening."""
    from . import recipes
    from .data import CIFAR10, FashionMNIST, transforms as T
    total = cfg['epochs'] * steps_per_epoch
    callbacks = []
    if cfg['schedule'] == 'triangle':
        callbacks.append(recipes.TriangleLR(optimizer, total))
    if cfg.get('lookahead'):
        callbacks.append(recipes.Lookahead(model, total))
    if cfg.get('whiten'):
        images = train.images[:5000]
        kind = CIFAR10 if cfg['dataset'] == 'cifar10' else FashionMNIST
        pad = (32 - images.shape[-1]) // 2
        images = T.Normalize(kind.mean, kind.std)(T.ToFloat()(
            np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))))
        callbacks.append(recipes.Whitening(model, images))
    return callbacks


def _limit(dataset, n, seed):
    """Keep a random subset of n samples (for quick runs)."""
    if n and n < len(dataset):
        keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
        dataset.images, dataset.labels = dataset.images[keep], dataset.labels[keep]


def build_model(cfg, num_classes, in_channels):
    import models
    if models.INPUT_SIZE.get(cfg['model'], 32) != 32:
        raise UsageError(f"model {cfg['model']} expects {models.INPUT_SIZE[cfg['model']]}x"
                         f"{models.INPUT_SIZE[cfg['model']]} images; {cfg['dataset']} "
                         f"images are 32x32 here: use a -cifar model")
    extra = {'width': cfg['width']} if cfg.get('width') is not None else {}
    if extra and cfg['model'] != 'alexnet-cifar':
        raise UsageError(f"--width is only supported by alexnet-cifar, not {cfg['model']}")
    return models.build(cfg['model'], num_classes=num_classes, in_channels=in_channels, **extra)


def build_optimizer(cfg, model):
    from . import optim, recipes
    if cfg.get('whiten') is False:  # the ablation: the first layer learns like the others
        model.whiten.weight.requires_grad = True
    params = model.parameters()
    if cfg.get('bias_lr_scale'):
        params = recipes.param_groups(model, cfg['lr'], cfg['weight_decay'],
                                      cfg['bias_lr_scale'])
    if cfg['optimizer'] == 'sgd':
        opt = optim.SGD(params, lr=cfg['lr'], momentum=cfg['momentum'],
                        weight_decay=cfg['weight_decay'], nesterov=cfg['momentum'] > 0)
    elif cfg['optimizer'] == 'adam':
        opt = optim.Adam(params, lr=cfg['lr'], weight_decay=cfg['weight_decay'])
    else:
        opt = optim.AdamW(params, lr=cfg['lr'], weight_decay=cfg['weight_decay'])
    sched = optim.lr_scheduler
    main = {'cosine': lambda: sched.CosineAnnealingLR(opt, max(cfg['epochs'] - cfg['warmup'], 1)),
            'step': lambda: sched.StepLR(opt, max(cfg['epochs'] // 3, 1)),
            'plateau': lambda: sched.ReduceLROnPlateau(opt, mode='max', patience=3),
            'triangle': lambda: None,  # per step: a callback (build_callbacks)
            'none': lambda: None}[cfg['schedule']]()
    if cfg['warmup'] and cfg['schedule'] == 'triangle':
        raise UsageError("--warmup does not apply to --schedule triangle (it warms up itself)")
    if cfg['warmup'] and cfg['schedule'] != 'plateau':
        main = sched.LinearWarmup(opt, cfg['warmup'], after=main)
    return opt, main


# ----------------------------------------------------------------------------- commands
def cmd_train(args):
    from . import distributed as dist
    from . import random
    from .train import CHECKPOINT, HISTORY, Trainer, write_json
    world, rank = dist.init(), dist.rank()
    _check_data_option(args.data)
    if args.out is not None and not args.out.strip():
        raise UsageError(f"--out must name a run directory, got {args.out!r}")
    if args.out is not None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out: {args.out!r} is a file, not a run directory")
    if args.resume:
        cfg = _resume_settings(args)
    else:
        if not args.model:
            raise UsageError("train needs --model NAME (see `minidl summary --help`)")
        cfg = settings(args)
        cfg['out'] = cfg.get('out') or os.path.join(
            'runs', f"{cfg['model']}-{cfg['dataset']}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        if os.path.exists(os.path.join(cfg['out'], CHECKPOINT)):
            raise UsageError(f"{cfg['out']} already holds a run: add --resume to continue it "
                             f"or choose another --out")
    _check_device(cfg['device'])
    _check_data_holds(args.data, cfg['dataset'], (True, False))
    if world > 1 and cfg['batch_size'] % world:
        raise UsageError(f"--batch-size {cfg['batch_size']} is the global batch and must be "
                         f"divisible by the {world} ranks")
    random.manual_seed(cfg['seed'])
    train, test, train_loader, test_loader = build_data(cfg, rank, world)
    model = build_model(cfg, len(train.classes), train.images.shape[1]).to(cfg['device'])
    dist.broadcast_parameters(model)  # (every rank built the same model; now provably so)
    if rank:  # dropout masks: each rank its own stream (rank 0 keeps the 1-process one)
        random.manual_seed(cfg['seed'] + 7919 * rank)
    opt, sched = build_optimizer(cfg, model)
    if len(train_loader) == 0:  # (drop_last: the triangle schedule drops a short batch)
        raise UsageError(f"--batch-size {cfg['batch_size']} is more than the {len(train)} "
                         f"training images, and --schedule triangle drops an incomplete "
                         f"batch: no training step would be made; use a --batch-size of at "
                         f"most {len(train)}")
    try:
        os.makedirs(cfg['out'], exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out: cannot make the run directory {cfg['out']!r}: "
                         f"{e.strerror}") from None
    if dist.is_main():
        _write_config(cfg)
    ranks = f", {world} ranks x {cfg['batch_size'] // world} images" if world > 1 else ''
    main_print(f"training {cfg['model']} on {cfg['dataset']} ({len(train)} train / "
               f"{len(test)} test images, {len(train.classes)} classes) on {cfg['device']}"
               f"{ranks} -> {cfg['out']}")
    callbacks = build_callbacks(cfg, model, opt, train, len(train_loader))
    trainer = Trainer(model, opt, train_loader, test_loader, sched, cfg['epochs'], cfg['out'],
                      cfg['label_smoothing'], config=cfg, callbacks=callbacks,
                      eval_every=cfg.get('eval_every', 1))
    history = trainer.fit(resume=args.resume)
    if trainer.stopped:
        return 130
    if history:
        best = max((r for r in history if 'val_acc' in r), key=lambda r: r['val_acc'])
        tta, predictions = '', None
        if cfg.get('tta') and world == 1:  # its probabilities also make the pictures
            result = trainer.evaluate(test_loader, tta=cfg['tta'], keep_probs=True)
            predictions = result['probs'], result['labels']
        elif cfg.get('tta'):
            result = trainer.evaluate(test_loader, tta=cfg['tta'])
        if cfg.get('tta'):
            history[-1]['val_acc_tta'] = result['acc']
            if dist.is_main():
                write_json(history, os.path.join(cfg['out'], HISTORY))
            tta = f", with test-time augmentation (level {cfg['tta']}) {result['acc']:.2%}"
        main_print(f"done: final test top-1 {history[-1]['val_acc']:.2%}{tta}, best "
                   f"{best['val_acc']:.2%} (epoch {best['epoch']}); total "
                   f"{sum(r['time'] for r in history):.0f} s")
    if dist.is_main():
        if world > 1:  # the pictures show the whole test set, not rank 0's shard
            from .data import DataLoader
            test_loader = DataLoader(test, 256, transform=test_loader.transform,
                                     seed=cfg['seed'], device=cfg['device'])
        _make_plots(cfg['out'], model, test, test_loader, history, predictions=predictions)
    return 0


def main_print(*args, **kwargs):
    """print, on rank 0 only (every line once, however many ranks train)."""
    from . import distributed as dist
    if dist.is_main():
        print(*args, **kwargs)


def cmd_eval(args):
    if os.path.isdir(args.checkpoint):
        raise UsageError(f"--checkpoint: {args.checkpoint!r} is a directory; give a checkpoint "
                         f"file such as {os.path.join(args.checkpoint, 'best.npz')}")
    if os.path.exists(args.checkpoint) and not os.path.isfile(args.checkpoint):
        raise UsageError(f"--checkpoint: {args.checkpoint!r} is not a regular file (a device "
                         f"or pipe); give a checkpoint file such as RUN/best.npz")
    _check_data_option(args.data)
    state, cfg = _load_run_checkpoint(args.checkpoint)
    cfg['device'] = args.device or 'cpu'
    if args.data is not None:
        cfg['data'] = args.data
    _check_device(cfg['device'])
    _check_data_holds(args.data, cfg['dataset'], (False,))
    model, test, loader = _restore(cfg, state)
    from .train import Trainer
    result = Trainer(model, None, None).evaluate(loader, tta=args.tta)
    tta = f" with test-time augmentation (level {args.tta})" if args.tta else ''
    print(f"{cfg['model']} on {cfg['dataset']} test set ({len(test)} images){tta}: loss "
          f"{result['loss']:.4f}, top-1 {result['acc']:.2%}, top-5 {result['top5']:.2%}")
    return 0


def cmd_summary(args):
    import models
    from .nn import summary
    for option, value in (('--batch', args.batch), ('--num-classes', args.num_classes)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be a positive integer, got {value}")
    try:
        model = models.build(args.model, num_classes=args.num_classes)
    except ValueError as e:
        raise UsageError(str(e)) from None
    size = models.INPUT_SIZE[args.model]
    summary(model, (args.batch, 3, size, size))
    return 0


def cmd_plot(args):
    path = os.path.join(args.run_dir, 'best.npz')
    if not os.path.exists(path):
        raise UsageError(f"{args.run_dir} has no best.npz: is it a minidl run directory?")
    state, cfg = _load_run_checkpoint(path)
    history = state.get('history')
    if not isinstance(history, list) or not history or not all(
            isinstance(r, dict) for r in history):
        raise UsageError(f"{path}: 'history' must be a non-empty list of per-epoch records, "
                         f"got {type(history).__name__} {str(history)[:40]}")
    cfg['device'] = 'cpu'
    model, test, loader = _restore(cfg, state)
    _make_plots(args.run_dir, model, test, loader, state['history'], quiet=False)
    return 0


def cmd_study(args):
    from . import studies
    if args.list:
        # what a listing would ignore: a study name, the options of a run
        given = (('--quick', args.quick or None), ('--seeds', args.seeds),
                 ('--device', args.device), ('--data', args.data), ('--out', args.out))
        ignored = ([repr(args.name)] if args.name is not None else []) + \
            [option for option, value in given if value is not None]
        if ignored:
            raise UsageError(f"--list takes no study name or other option, got "
                             f"{', '.join(ignored)}")
        for name in studies.names():
            s = studies.REGISTRY[name]
            print(f"{name:20s} {s.claim} ({s.source})")
        return 0
    if not args.name:
        raise UsageError("study needs a NAME or --list")
    if args.name not in studies.names():
        raise UsageError(f"unknown study {args.name!r}; known: {', '.join(studies.names())}")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be a positive integer, got {args.seeds}")
    device = args.device or 'cpu'
    _check_device(device)
    _check_data_option(args.data)
    _check_data_holds(args.data, 'cifar10', (True, False))  # (every study's data)
    if args.out is not None and not args.out.strip():
        raise UsageError(f"--out must name a result directory, got {args.out!r}")
    out = args.out or os.path.join('studies', args.name)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out: {out!r} is a file, not a directory")
    print(f"study {args.name}{' (quick)' if args.quick else ''} -> {out}")
    result = studies.run(args.name, quick=args.quick, seeds=args.seeds, device=device,
                         out=out, data=args.data, log=print)
    print(f"verdict: {result['verdict']}")
    print(f"done in {result['seconds']:.0f} s: {os.path.join(out, 'result.json')} and "
          f"{', '.join(sorted(f for f in os.listdir(out) if f.endswith('.png')))}")
    return 0


def cmd_graph(args):
    import models
    from . import graph
    from .functional import softmax_cross_entropy
    from .tensor import Tensor
    if args.batch < 1:
        raise UsageError(f"--batch must be a positive integer, got {args.batch}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise UsageError(f"--out: directory {folder!r} does not exist")
    if os.path.isdir(args.out) or os.path.splitext(args.out)[1].lower() not in (
            '.svg', '.png', '.pdf', '.dot'):
        raise UsageError(f"--out must name a .svg, .png, .pdf or .dot file, got {args.out!r}")
    model = models.build(args.model)
    size = models.INPUT_SIZE.get(args.model, 32)
    x = Tensor(np.random.default_rng(0).standard_normal(
        (args.batch, 3, size, size)).astype(np.float32))
    loss = softmax_cross_entropy(model(x), np.arange(args.batch) % 2)
    dot = graph.to_dot(loss, dict(model.named_parameters()),
                       f"{args.model}: one training step (batch {args.batch})")
    written, hint = graph.write(dot, args.out)
    print(f"{len(graph.functions(loss))} functions -> {written}")
    if hint:
        print(hint)
    return 0


def cmd_demo(args):
    from . import demo
    problem = demo.check(args)
    if problem:
        raise UsageError(problem)
    demo.run(args.epochs, args.seed)
    return 0


# ----------------------------------------------------------------------------- helpers
def _restore(cfg, state):
    """Model with the checkpoint's weights and the test split, from a run's config."""
    train, test, _, loader = build_data({**cfg, 'train_size': 1})
    model = build_model(cfg, len(test.classes), test.images.shape[1])
    model.load_state_dict(state['model'])
    return model.to(cfg['device']), test, loader


def _make_plots(run_dir, model, test, loader, history, quiet=True, predictions=None):
    """The run's pictures; ``predictions``: (probs, labels) of the test set if known (the
    final test-time-augmented evaluation's), else computed here."""
    from .train import predict
    try:
        from . import plots
        probs, labels = predictions or predict(model, loader)
        written = [plots.plot_history(history, os.path.join(run_dir, 'curves.png'))]
    except ImportError as e:  # matplotlib is optional
        print(f"pictures skipped: {e}")
        return
    conv = next(m for m in model.modules() if type(m).__name__ == 'Conv2d')
    written.append(plots.plot_filters(conv.weight.numpy(), os.path.join(run_dir, 'filters.png')))
    cm = plots.confusion_matrix(labels, probs.argmax(1), len(test.classes))
    written.append(plots.plot_confusion(cm, test.classes, os.path.join(run_dir,
                                                                      'confusion.png')))
    top5 = np.argsort(-probs, axis=1)[:, :5]
    written.append(plots.plot_predictions(
        test.images[:16], labels[:16], top5[:16], np.take_along_axis(probs, top5, 1)[:16],
        test.classes, os.path.join(run_dir, 'predictions.png')))
    print("pictures: " + ", ".join(written))


def _check_device(device):
    from . import backend
    try:
        backend.check_device(device)
    except (ValueError, RuntimeError) as e:
        raise UsageError(str(e)) from None


def _check_data_option(data):
    """An explicit ``--data`` must be an existing directory: a mistyped one is an error,
    never silently replaced by $MINIDL_DATA or the standard places (nor made by a
    download into it). Without --data the search order of minidl.data holds."""
    if data is None:
        return
    path = os.path.expanduser(data)
    if not data.strip():
        why = ''
    elif not os.path.exists(path):
        why = ', which does not exist'
    elif not os.path.isdir(path):
        why = ', which is not a directory'
    else:
        return
    raise UsageError(f"--data must be an existing directory, got {data!r}{why}")


def _check_data_holds(data, dataset, splits):
    """An explicit ``--data`` is the only place looked at: when it lacks a split of the
    data set, one line saying what is missing there and how to provide it, rather than
    data found in $MINIDL_DATA or the cache (or a download into the folder). Checked
    before the data set is read, which then finds the files there first."""
    if data is None:
        return
    from .data.datasets import missing_from
    for train in splits:
        problem = missing_from(dataset, data, train)
        if problem:
            raise UsageError(f"--data {data!r} has {problem}, or leave out --data to search "
                             f"$MINIDL_DATA and the standard places (a data set found "
                             f"nowhere is downloaded into ~/.cache/minidl)")


def _write_config(cfg):
    from .train import write_json
    write_json(cfg, os.path.join(cfg['out'], 'config.json'))


def _resume_settings(args):
    """The settings of the run in --out, which continues there (wherever it was made)."""
    from .train import CHECKPOINT
    if not args.out:
        raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
    others = sorted(k for k in _given(args) if k not in RESUME_OPTIONS)
    if others:
        raise UsageError(f"--resume continues a run with its own settings (config.json); only "
                         f"--epochs, --device and --data may change, not "
                         f"{', '.join('--' + k.replace('_', '-') for k in others)}")
    cfg = _read_config(args.out)
    if not os.path.exists(os.path.join(args.out, CHECKPOINT)):
        raise UsageError(f"--resume: {os.path.join(args.out, CHECKPOINT)} not found: the run "
                         f"never finished an epoch; start it again without --resume")
    # The directory may have been copied or moved since config.json was written (and a
    # relative 'out' was relative to another working directory): the run continues in
    # --out, and only there.
    cfg['out'] = args.out
    cfg.setdefault('device', GENERIC['device'])
    cfg.update({k: v for k, v in _given(args).items() if k in RESUME_OPTIONS})
    check_settings(cfg)
    if args.epochs is not None:  # only a raise: config.json must not record fewer than done
        from . import load
        state = load(os.path.join(args.out, CHECKPOINT))
        done = state.get('epoch') if isinstance(state, dict) else None
        if isinstance(done, numbers.Integral):
            begun = ' and begun one' if state.get('step') else ''
            least = done + 1 if begun else done
            if args.epochs < least:
                raise UsageError(f"--epochs {args.epochs} with --resume: the run in {args.out} "
                                 f"has finished {done} epoch(s){begun}; --epochs may only "
                                 f"raise its total, to at least {least}")
    return cfg


def _read_config(run_dir):
    """A run's config.json, checked; every problem is a UsageError naming the file."""
    path = os.path.join(run_dir, 'config.json')
    if not os.path.exists(path):
        raise UsageError(f"--resume: {path} not found; is {run_dir} a minidl run directory?")
    try:
        with open(path, encoding='utf-8') as f:
            cfg = json.load(f)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise UsageError(f"{path} is not valid JSON ({e}): a run's config.json was "
                         f"written by `minidl train`") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path} is not a JSON object of settings but a "
                         f"{type(cfg).__name__}")
    check_settings(cfg, path)
    return cfg


def _load_run_checkpoint(path):
    """(state, settings) of a checkpoint written by `minidl train`, checked."""
    from . import load
    state = load(path)
    if not isinstance(state, dict) or state.get('format') != 'minidl-train':
        raise UsageError(f"{path} is not a minidl training checkpoint")
    cfg = state.get('config')
    if not isinstance(cfg, dict) or not cfg:
        raise UsageError(f"{path} holds no run configuration (it was saved by a Trainer "
                         f"without config=): eval and plot need a checkpoint written by "
                         f"`minidl train`")
    check_settings(cfg, path)
    weights = state.get('model')
    if not isinstance(weights, dict) or not weights:
        raise UsageError(f"{path} holds no model weights ('model' is "
                         f"{type(weights).__name__}, expected a dict of arrays)")
    for name, array in weights.items():
        array = np.asarray(array)
        if array.dtype.kind not in 'fiub':
            raise UsageError(f"{path}: model weight {name!r} must be a numeric array, got "
                             f"dtype {array.dtype}")
        if array.dtype.kind == 'f' and not np.isfinite(array).all():
            raise UsageError(f"{path}: model weight {name!r} holds NaN or infinite values: "
                             f"the checkpoint is corrupt")
    return state, dict(cfg)


# ----------------------------------------------------------------------------- parser
def parser():
    import models
    p = ArgumentParser(prog='minidl', description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train a model on CIFAR-10 or Fashion-MNIST')
    t.add_argument('--model', choices=models.names(), metavar='NAME',
                   help='one of: ' + ', '.join(models.names()))
    t.add_argument('--dataset', choices=DATASETS)
    t.add_argument('--classes', help='comma-separated CIFAR-10 class subset, e.g. airplane,ship')
    t.add_argument('--epochs', type=int)
    t.add_argument('--batch-size', type=int, dest='batch_size')
    t.add_argument('--lr', type=float)
    t.add_argument('--optimizer', choices=OPTIMIZERS)
    t.add_argument('--momentum', type=float)
    t.add_argument('--weight-decay', type=float, dest='weight_decay')
    t.add_argument('--schedule', choices=SCHEDULES)
    t.add_argument('--warmup', type=int, help='epochs of linear learning-rate warm-up')
    t.add_argument('--label-smoothing', type=float, dest='label_smoothing')
    t.add_argument('--width', type=float, help='channel multiplier (alexnet-cifar only)')
    t.add_argument('--no-augment', action='store_false', dest='augment', default=None,
                   help='no random crops and flips')
    t.add_argument('--lighting', action='store_true', default=None,
                   help="the AlexNet paper's PCA colour noise")
    t.add_argument('--flip', choices=FLIPS, help="random (a coin per image) or alternating "
                   "(a fixed half mirrored, all flipped every other epoch)")
    t.add_argument('--translate', type=int, help='random translation by up to N pixels '
                   '(the padding of the random crop; default 4)')
    t.add_argument('--tta', type=int, choices=(0, 1, 2), help='final test with test-time '
                   'augmentation: 0 none, 1 mirror, 2 mirror and 1-pixel shifts')
    t.add_argument('--eval-every', type=int, dest='eval_every', help='test after every '
                   'N-th epoch and after the last (0: after the last only; default 1, '
                   'vgg-fast-cifar 0)')
    t.add_argument('--no-lookahead', action='store_false', dest='lookahead', default=None,
                   help='(vgg-fast-cifar) no weight averaging')
    t.add_argument('--no-whiten', action='store_false', dest='whiten', default=None,
                   help='(vgg-fast-cifar) train the first layer instead of whitening')
    t.add_argument('--device', choices=('cpu', 'cuda'))
    t.add_argument('--seed', type=int)
    t.add_argument('--data', help='data root, an existing directory (default: $MINIDL_DATA, '
                   'then standard places)')
    t.add_argument('--out', help='run directory (default runs/MODEL-DATASET-TIME)')
    t.add_argument('--resume', action='store_true',
                   help='continue the run in --out, with its own settings')
    t.add_argument('--train-size', type=int, dest='train_size', help='use N training images')
    t.add_argument('--test-size', type=int, dest='test_size', help='use N test images')
    t.set_defaults(run=cmd_train)
    e = sub.add_parser('eval', help='evaluate a checkpoint on its test set')
    e.add_argument('--checkpoint', required=True)
    e.add_argument('--device', choices=('cpu', 'cuda'))
    e.add_argument('--tta', type=int, nargs='?', const=2, default=0, choices=(0, 1, 2),
                   help='test-time augmentation: 1 mirror, 2 (the default of a bare --tta) '
                        'mirror and 1-pixel shifts')
    e.add_argument('--data', help="data root, an existing directory (default: the run's, "
                   "then $MINIDL_DATA, then standard places)")
    e.set_defaults(run=cmd_eval)
    s = sub.add_parser('summary', help='print the layer table of a model')
    s.add_argument('--model', required=True, choices=models.names(), metavar='NAME',
                   help='one of: ' + ', '.join(models.names()))
    s.add_argument('--num-classes', type=int, dest='num_classes')
    s.add_argument('--batch', type=int, default=1)
    s.set_defaults(run=cmd_summary)
    g = sub.add_parser('plot', help='draw the pictures of a run directory')
    g.add_argument('run_dir')
    g.set_defaults(run=cmd_plot)
    st = sub.add_parser('study', help="re-run a claim of the AlexNet/VGG papers or the blog")
    st.add_argument('name', nargs='?', help='the study (see --list)')
    st.add_argument('--list', action='store_true', help='list the studies and their claims')
    st.add_argument('--quick', action='store_true', help='small subsets: under 2 minutes')
    st.add_argument('--seeds', type=int, help='repetitions with other seeds (default 3; '
                    'quick: 1)')
    st.add_argument('--device', choices=('cpu', 'cuda'), help='default cpu')
    st.add_argument('--data', help='data root, an existing directory (default: $MINIDL_DATA, '
                    'then standard places)')
    st.add_argument('--out', help='result directory (default studies/NAME)')
    st.set_defaults(run=cmd_study)
    gr = sub.add_parser('graph', help="draw one training step's computational graph")
    gr.add_argument('--model', required=True, choices=models.names(), metavar='NAME',
                    help='one of: ' + ', '.join(models.names()))
    gr.add_argument('--out', required=True, help='FILE.svg, .png, .pdf (needs Graphviz) '
                    'or .dot')
    gr.add_argument('--batch', type=int, default=2)
    gr.set_defaults(run=cmd_graph)
    from . import demo
    d = sub.add_parser('demo', help='a one-minute demonstration on synthetic stripes',
                       description=demo.__doc__.splitlines()[0])
    demo.add_arguments(d)
    d.set_defaults(run=cmd_demo)
    return p


def main(argv=None):
    from .kernels import cpu, winograd
    from .train import TrainingDiverged
    args = parser().parse_args(argv)
    try:
        cpu.get_num_threads()  # a bad MINIDL_NUM_THREADS: one line now, not in the first op
        winograd.check_environment()  # the same for MINIDL_WINOGRAD
        with warnings.catch_warnings():
            # NumPy's "overflow encountered in matmul" and the like say less than the
            # trainer's own check of every loss and of the weights (TrainingDiverged)
            warnings.filterwarnings('ignore', FLOAT_WARNINGS, RuntimeWarning)
            return args.run(args)
    # minidl raises ValueError for bad values (an unknown class, a corrupt data file or
    # checkpoint) and FileNotFoundError for missing files: for a user these are one line
    except (UsageError, ValueError, FileNotFoundError, TrainingDiverged) as e:
        # one line, also for a multi-line message (a data set not found lists the places)
        message = ' '.join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"minidl {args.command}: error: {message}", file=sys.stderr)
        return 2
    # a failed read or write: a full disk (atomic_write names the file; the previous
    # version of it is kept), no permission
    except OSError as e:
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 1
