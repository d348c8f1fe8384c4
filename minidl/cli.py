"""The ``minidl`` command: train, eval, summary, plot (and the demo).

    minidl train --model alexnet-cifar --dataset cifar10
    minidl train --model alexnet-cifar-2class --dataset cifar10 --classes airplane,ship
    minidl eval --checkpoint runs/alexnet-cifar-cifar10/best.npz
    minidl summary --model vgg16
    minidl plot runs/alexnet-cifar-cifar10

Bad input (unknown model, dataset or device, impossible settings, missing data) is a
one-line error and exit status 2, never a traceback.
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np

DATASETS = ('cifar10', 'fashion-mnist')
GENERIC = dict(epochs=10, batch_size=128, optimizer='sgd', lr=0.01, momentum=0.9,
               weight_decay=5e-4, schedule='cosine', warmup=0, label_smoothing=0.0)
# Per-model defaults, so that `minidl train --model NAME` alone trains well.
MODEL_DEFAULTS = {
    'alexnet-cifar': dict(epochs=30, lr=0.02, warmup=1),
    'alexnet-cifar-2class': dict(epochs=14, batch_size=64, optimizer='adam', lr=1e-3,
                                 weight_decay=0.0, classes='airplane,ship'),
    'vgg11-bn-cifar': dict(epochs=40, lr=0.05, warmup=1),
    'vgg16-bn-cifar': dict(epochs=60, lr=0.05, warmup=1),
    'vgg11-cifar': dict(epochs=40, lr=0.01, warmup=2),
    'vgg16-cifar': dict(epochs=60, lr=0.01, warmup=2),
}


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line."""


# ----------------------------------------------------------------------------- set-up
def settings(args):
    """Command-line values over the model's defaults over the generic defaults."""
    merged = {**GENERIC, **MODEL_DEFAULTS.get(args.model, {})}
    for key, value in vars(args).items():
        if value is not None and key not in ('run', 'command', 'resume'):
            merged[key] = value
    if merged['epochs'] < 1 or merged['batch_size'] < 1 or merged['lr'] <= 0:
        raise UsageError(f"epochs ({merged['epochs']}), batch size ({merged['batch_size']}) "
                         f"and lr ({merged['lr']}) must be positive")
    return merged


def build_data(cfg):
    """Train and test datasets and loaders for cfg (dataset, classes, augmentation...)."""
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
    _limit(train, cfg.get('train_size'), cfg['seed'])
    _limit(test, cfg.get('test_size'), cfg['seed'])
    pad = (32 - train.images.shape[-1]) // 2  # Fashion-MNIST's 28x28 are padded to 32
    lighting = None
    if cfg.get('lighting'):
        if train.images.shape[1] != 3:
            raise UsageError("--lighting (PCA colour noise) needs RGB images (cifar10)")
        lighting = T.Lighting(0.1, *T.pca_lighting(train.images))
    augment = cfg.get('augment', True)
    train_tf = T.train_transform(kind.mean, kind.std, 32, pad + 4 * augment, flip=augment,
                                 lighting=lighting)
    test_tf = T.Compose([T.RandomCrop(32, pad), T.ToFloat(), T.Normalize(kind.mean, kind.std)])
    device = cfg['device']
    return (train, test,
            DataLoader(train, cfg['batch_size'], shuffle=True, transform=train_tf,
                       seed=cfg['seed'], device=device),
            DataLoader(test, 256, transform=test_tf, seed=cfg['seed'], device=device))


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
    extra = {'width': cfg['width']} if cfg.get('width') else {}
    if extra and cfg['model'] != 'alexnet-cifar':
        raise UsageError(f"--width is only supported by alexnet-cifar, not {cfg['model']}")
    return models.build(cfg['model'], num_classes=num_classes, in_channels=in_channels, **extra)


def build_optimizer(cfg, model):
    from . import optim
    params = model.parameters()
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
            'none': lambda: None}[cfg['schedule']]()
    if cfg['warmup'] and cfg['schedule'] != 'plateau':
        main = sched.LinearWarmup(opt, cfg['warmup'], after=main)
    return opt, main


# ----------------------------------------------------------------------------- commands
def cmd_train(args):
    from . import random
    from .train import Trainer
    if args.resume:
        if not args.out:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        cfg = _read_config(args.out)
        cfg.update({k: getattr(args, k) for k in ('epochs', 'device') if getattr(args, k)})
    else:
        if not args.model:
            raise UsageError("train needs --model NAME (see `minidl summary --help`)")
        cfg = settings(args)
        cfg['out'] = cfg.get('out') or os.path.join(
            'runs', f"{cfg['model']}-{cfg['dataset']}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        if os.path.exists(os.path.join(cfg['out'], 'checkpoint.npz')):
            raise UsageError(f"{cfg['out']} already holds a run: add --resume to continue it "
                             f"or choose another --out")
    _check_device(cfg['device'])
    random.manual_seed(cfg['seed'])
    train, test, train_loader, test_loader = build_data(cfg)
    model = build_model(cfg, len(train.classes), train.images.shape[1]).to(cfg['device'])
    opt, sched = build_optimizer(cfg, model)
    os.makedirs(cfg['out'], exist_ok=True)
    _write_config(cfg)
    print(f"training {cfg['model']} on {cfg['dataset']} ({len(train)} train / {len(test)} "
          f"test images, {len(train.classes)} classes) on {cfg['device']} -> {cfg['out']}")
    trainer = Trainer(model, opt, train_loader, test_loader, sched, cfg['epochs'], cfg['out'],
                      cfg['label_smoothing'], config=cfg)
    history = trainer.fit(resume=args.resume)
    if trainer.stop_requested:
        return 130
    if history:
        best = max(history, key=lambda r: r['val_acc'])
        print(f"done: final test top-1 {history[-1]['val_acc']:.2%}, best {best['val_acc']:.2%} "
              f"(epoch {best['epoch']}); total {sum(r['time'] for r in history):.0f} s")
    _make_plots(cfg['out'], model, test, test_loader, history)
    return 0


def cmd_eval(args):
    from . import load
    state = load(args.checkpoint)
    if not isinstance(state, dict) or state.get('format') != 'minidl-train':
        raise UsageError(f"{args.checkpoint} is not a minidl training checkpoint")
    cfg = {**state['config'], 'device': args.device or 'cpu'}
    if args.data:
        cfg['data'] = args.data
    _check_device(cfg['device'])
    model, test, loader = _restore(cfg, state)
    from .train import Trainer
    result = Trainer(model, None, None).evaluate(loader)
    print(f"{cfg['model']} on {cfg['dataset']} test set ({len(test)} images): loss "
          f"{result['loss']:.4f}, top-1 {result['acc']:.2%}, top-5 {result['top5']:.2%}")
    return 0


def cmd_summary(args):
    import models
    from .nn import summary
    try:
        model = models.build(args.model, num_classes=args.num_classes)
    except ValueError as e:
        raise UsageError(str(e)) from None
    size = models.INPUT_SIZE[args.model]
    summary(model, (args.batch, 3, size, size))
    return 0


def cmd_plot(args):
    from . import load
    path = os.path.join(args.run_dir, 'best.npz')
    if not os.path.exists(path):
        raise UsageError(f"{args.run_dir} has no best.npz: is it a minidl run directory?")
    state = load(path)
    cfg = {**state['config'], 'device': 'cpu'}
    model, test, loader = _restore(cfg, state)
    _make_plots(args.run_dir, model, test, loader, state['history'], quiet=False)
    return 0


def cmd_demo(args):
    from .demo import main
    main(args.rest)
    return 0


# ----------------------------------------------------------------------------- helpers
def _restore(cfg, state):
    """Model with the checkpoint's weights and the test split, from a run's config."""
    train, test, _, loader = build_data({**cfg, 'train_size': 1})
    model = build_model(cfg, len(test.classes), test.images.shape[1])
    model.load_state_dict(state['model'])
    return model.to(cfg['device']), test, loader


def _make_plots(run_dir, model, test, loader, history, quiet=True):
    from .train import predict
    try:
        from . import plots
        probs, labels = predict(model, loader)
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


def _write_config(cfg):
    from .train import write_json
    write_json(cfg, os.path.join(cfg['out'], 'config.json'))


def _read_config(run_dir):
    path = os.path.join(run_dir, 'config.json')
    if not os.path.exists(path):
        raise UsageError(f"--resume: {path} not found; is {run_dir} a minidl run directory?")
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------- parser
def parser():
    import models
    p = argparse.ArgumentParser(prog='minidl', description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='command', required=True)
    t = sub.add_parser('train', help='train a model on CIFAR-10 or Fashion-MNIST')
    t.add_argument('--model', choices=models.names(), metavar='NAME',
                   help='one of: ' + ', '.join(models.names()))
    t.add_argument('--dataset', choices=DATASETS, default='cifar10')
    t.add_argument('--classes', help='comma-separated CIFAR-10 class subset, e.g. airplane,ship')
    t.add_argument('--epochs', type=int)
    t.add_argument('--batch-size', type=int, dest='batch_size')
    t.add_argument('--lr', type=float)
    t.add_argument('--optimizer', choices=('sgd', 'adam', 'adamw'))
    t.add_argument('--momentum', type=float)
    t.add_argument('--weight-decay', type=float, dest='weight_decay')
    t.add_argument('--schedule', choices=('cosine', 'step', 'plateau', 'none'))
    t.add_argument('--warmup', type=int, help='epochs of linear learning-rate warm-up')
    t.add_argument('--label-smoothing', type=float, dest='label_smoothing')
    t.add_argument('--width', type=float, help='channel multiplier (alexnet-cifar only)')
    t.add_argument('--no-augment', action='store_false', dest='augment', default=None,
                   help='no random crops and flips')
    t.add_argument('--lighting', action='store_true', default=None,
                   help="the AlexNet paper's PCA colour noise")
    t.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--data', help='data root (default: $MINIDL_DATA, then standard places)')
    t.add_argument('--out', help='run directory (default runs/MODEL-DATASET-TIME)')
    t.add_argument('--resume', action='store_true', help='continue the run in --out')
    t.add_argument('--train-size', type=int, dest='train_size', help='use N training images')
    t.add_argument('--test-size', type=int, dest='test_size', help='use N test images')
    t.set_defaults(run=cmd_train)
    e = sub.add_parser('eval', help='evaluate a checkpoint on its test set')
    e.add_argument('--checkpoint', required=True)
    e.add_argument('--device', choices=('cpu', 'cuda'))
    e.add_argument('--data')
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
    d = sub.add_parser('demo', help='a one-minute demonstration on synthetic stripes')
    d.add_argument('rest', nargs=argparse.REMAINDER)
    d.set_defaults(run=cmd_demo)
    return p


def main(argv=None):
    from .train import TrainingDiverged
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    # minidl raises ValueError for bad values (an unknown class, a corrupt data file or
    # checkpoint) and FileNotFoundError for missing files: for a user these are one line
    except (UsageError, ValueError, FileNotFoundError, TrainingDiverged) as e:
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 2
