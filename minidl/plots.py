"""Training figures as PNG files: learning curves, filters, confusion matrices, predictions.

    from minidl import plots

    plots.plot_history(history, 'curves.png')            # loss / accuracy / lr per epoch
    plots.plot_filters(conv1_weight, 'filters.png')      # like figure 3 of the AlexNet paper
    cm = plots.confusion_matrix(true, pred, num_classes=10)
    plots.plot_confusion(cm, class_names, 'confusion.png')
    plots.plot_predictions(images, labels, top5_idx, top5_prob, class_names, 'preds.png',
                           mean=MEAN, std=STD)           # like figure 4 of the AlexNet paper

Inputs are plain NumPy arrays, lists and dicts (copy Tensors and CuPy arrays to the host
first). matplotlib is optional (``pip install 'minidl[plots]'``) and imported only when a
plot is drawn. Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas
directly, never through pyplot: the user's backend is left alone, no global figure state is
created, and plots may be drawn from several threads (drawing is serialised by a lock of
this module, as matplotlib itself is not thread-safe). Every ``plot_*`` function writes its
PNG atomically (a temporary file next to ``path``, then ``os.replace``), so a failed or
interrupted render never leaves a half-written file or destroys an existing one, and
returns ``path`` as a str. ``confusion_matrix`` needs only NumPy.
"""
import functools
import math
import os
import threading

import numpy as np

from .files import atomic_write, fspath as _fspath

MISSING_MATPLOTLIB = "minidl.plots needs matplotlib: pip install 'minidl[plots]'"
DPI = 100

TRAIN_COLOR, VAL_COLOR, LR_COLOR = 'tab:blue', 'tab:orange', 'tab:green'
BAR_COLOR, TRUE_BAR_COLOR = '#9bb7d4', '#d62728'
_FRAME = 0.45  # gray level of the frame around each filter in plot_filters
_LOCK = threading.RLock()


def _serialised(plot):
    """Run ``plot`` under this module's lock: matplotlib's caches are not thread-safe."""
    @functools.wraps(plot)
    def locked(*args, **kwargs):
        with _LOCK:
            return plot(*args, **kwargs)
    return locked


# ----------------------------------------------------------------------------- plumbing
def _figure(**kwargs):
    """A new Agg-backed Figure (no pyplot); ImportError with the install hint if missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(MISSING_MATPLOTLIB) from e
    fig = Figure(dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def _target(path, func):
    """The file ``path`` names (through a symlink); FileNotFoundError if its directory is
    missing. Checked before drawing, so that a bad path fails fast."""
    target = os.path.realpath(_fspath(path))
    if not os.path.isdir(os.path.dirname(target)):
        raise FileNotFoundError(f"{func}: directory {os.path.dirname(target)!r} "
                                f"does not exist")
    return target


def _save_png(fig, path, func):
    """Render ``fig`` to ``path`` as PNG via a temporary file and os.replace; return path."""
    with atomic_write(path, func) as f:
        fig.savefig(f, format='png', dpi=DPI, facecolor='white')
    return _fspath(path)


def _text(s):
    """``s`` as literal text: a '$' in a class name must not switch on mathtext."""
    return str(s).replace('$', r'\$')


def _short(s, width):
    s = str(s)
    return s if len(s) <= width else s[:width - 1] + '…'


def _real_array(x, func, name):
    """``x`` as a float64 array of finite values; TypeError/ValueError naming func and name."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"{func}: {name} must be a numeric array, got dtype {a.dtype}")
    if np.iscomplexobj(a):
        raise TypeError(f"{func}: {name} must be real, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{func}: {name} contains NaN or infinite values")
    return a


def _int_array(x, func, name):
    a = np.asarray(x)
    if a.size and not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise TypeError(f"{func}: {name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _check_indices(a, limit, func, name, what):
    if a.size and (a.min() < 0 or a.max() >= limit):
        bad = a[(a < 0) | (a >= limit)].flat[0]
        raise ValueError(f"{func}: {name} must be in [0, {limit}) ({what}), found {bad}")


def _grid(n):
    """(rows, cols) of a near-square grid holding n cells, wider than tall."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


# ----------------------------------------------------------------------------- history
HISTORY_KEYS = ('train_loss', 'train_acc', 'val_loss', 'val_acc', 'val_top5', 'lr')
ACCURACY_KEYS = ('train_acc', 'val_acc', 'val_top5')


@_serialised
def plot_history(history, path):
    """Learning curves of a training run, as a PNG at ``path``; returns ``path``.

    ``history`` is a list of per-epoch dicts with keys 'epoch', 'train_loss', 'train_acc',
    'val_loss', 'val_acc', 'val_top5' (accuracies as fractions in [0, 1]) and optionally
    'lr'. Any key may be missing or None (e.g. no validation); a missing 'epoch' counts
    from 1. Panels: loss (train, val); accuracy in % (train top-1, val top-1, val top-5);
    and the learning rate when one is recorded (log scale when it spans a factor > 20).
    The title gives the best val top-1 and its epoch.
    """
    epochs, series = _history_series(history)
    _target(path, 'plot_history')
    panels = 3 if np.any(np.isfinite(series['lr'])) else 2
    fig = _figure(figsize=(5.0 * panels, 4.2), layout='constrained')
    axes = fig.subplots(1, panels)
    markers = dict(marker='o', markersize=3) if len(epochs) <= 40 else {}

    loss_ax, acc_ax = axes[0], axes[1]
    _curve(loss_ax, epochs, series['train_loss'], 'train', TRAIN_COLOR, '-', markers)
    _curve(loss_ax, epochs, series['val_loss'], 'val', VAL_COLOR, '-', markers)
    _decorate(loss_ax, 'Loss', 'loss')

    _curve(acc_ax, epochs, 100 * series['train_acc'], 'train top-1', TRAIN_COLOR, '-', markers)
    _curve(acc_ax, epochs, 100 * series['val_acc'], 'val top-1', VAL_COLOR, '-', markers)
    _curve(acc_ax, epochs, 100 * series['val_top5'], 'val top-5', VAL_COLOR, '--', markers)
    title = 'no validation accuracy recorded'
    if np.any(np.isfinite(series['val_acc'])):
        best = int(np.nanargmax(series['val_acc']))
        best_acc, best_epoch = 100 * series['val_acc'][best], epochs[best]
        acc_ax.plot([best_epoch], [best_acc], marker='*', markersize=13, color=VAL_COLOR,
                    markeredgecolor='black', linestyle='none', zorder=5,
                    label=f'best {best_acc:.2f}%')
        title = f'best val top-1: {best_acc:.2f}% at epoch {best_epoch:g}'
    _decorate(acc_ax, 'Accuracy', 'accuracy (%)')
    bottom, top = acc_ax.get_ylim()
    acc_ax.set_ylim(max(bottom, 0), min(top, 101))

    if panels == 3:
        lr = series['lr']
        _curve(axes[2], epochs, lr, 'lr', LR_COLOR, '-', dict(markers, drawstyle='steps-post'))
        positive = lr[np.isfinite(lr)]
        if np.all(positive > 0) and positive.max() / positive.min() > 20:
            axes[2].set_yscale('log')
        _decorate(axes[2], 'Learning rate', 'learning rate')
    if epochs.min() == epochs.max():  # a single epoch: integer ticks around it
        for ax in axes:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    plural = 's' if len(epochs) != 1 else ''
    fig.suptitle(f'Training history ({len(epochs)} epoch{plural}): {title}', fontsize=13)
    return _save_png(fig, path, 'plot_history')


def _history_series(history):
    """(epochs, {key: float array with NaN where missing}) from the list of dicts."""
    if isinstance(history, dict) or not isinstance(history, (list, tuple)) or not history:
        empty = ' (empty)' if isinstance(history, (list, tuple)) else ''
        raise ValueError(f"plot_history: history must be a non-empty list of per-epoch "
                         f"dicts, got a {type(history).__name__}{empty}")
    series = {key: np.full(len(history), np.nan) for key in HISTORY_KEYS}
    epochs = np.arange(1, len(history) + 1, dtype=np.float64)
    for i, entry in enumerate(history):
        if not isinstance(entry, dict):
            raise TypeError(f"plot_history: history[{i}] must be a dict, "
                            f"got {type(entry).__name__}")
        if entry.get('epoch') is not None:
            epochs[i] = _number(entry['epoch'], i, 'epoch')
        for key in HISTORY_KEYS:
            if entry.get(key) is not None:
                series[key][i] = _number(entry[key], i, key)
        for key in ACCURACY_KEYS:
            value = series[key][i]
            if not np.isnan(value) and not 0 <= value <= 1:
                raise ValueError(f"plot_history: accuracies must be fractions in [0, 1], "
                                 f"got history[{i}][{key!r}] = {entry[key]!r}")
    return epochs, series


def _number(value, i, key):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"plot_history: history[{i}][{key!r}] must be a number or None, "
                        f"got {value!r}")
    return float(value)


def _curve(ax, x, y, label, color, style, markers):
    """Plot the recorded points of y, joined across missing epochs (e.g. sparse val)."""
    known = np.isfinite(y)
    if np.any(known):
        ax.plot(x[known], y[known], linestyle=style, color=color, label=label, **markers)


def _decorate(ax, title, ylabel):
    from matplotlib.ticker import MaxNLocator
    ax.set_title(title)
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.35)
    if ax.lines:
        ax.legend(loc='best', fontsize=9)
    else:
        ax.text(0.5, 0.5, 'not recorded', ha='center', va='center', color='gray',
                transform=ax.transAxes)


# ----------------------------------------------------------------------------- filters
@_serialised
def plot_filters(weight, path, title='First-layer convolution filters'):
    """First-layer conv filters as an image grid (figure 3 of AlexNet), PNG at ``path``.

    ``weight`` has shape (out_channels, in_channels, kh, kw). Each filter is min-max
    normalised on its own to [0, 1] (a constant filter shows mid-gray) and shown in RGB
    when in_channels == 3, in grayscale when 1, and as the mean over channels otherwise.
    Filters fill a near-square grid with thin white gaps, magnified with
    nearest-neighbour upscaling so that even 3x3 kernels are clearly visible.
    """
    w = _real_array(weight, 'plot_filters', 'weight')
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"plot_filters: weight must be a non-empty 4-D array (out_channels, "
                         f"in_channels, kh, kw), got shape {w.shape}")
    oc, c, kh, kw = w.shape
    _target(path, 'plot_filters')
    tiles = _filter_tiles(w)                                   # (OC, KH, KW, 3) in [0, 1]
    rows, cols = _grid(oc)
    k = max(kh, kw)
    scale = max(math.ceil(48 / k), math.ceil(360 / (cols * k)))  # >= 48 px a filter
    scale = max(1, min(scale, 1600 // (cols * k)))                # but not a huge image
    gap = max(4, round(0.08 * k * scale))
    mosaic = _mosaic(tiles.repeat(scale, axis=1).repeat(scale, axis=2), rows, cols, gap)

    height, width = mosaic.shape[:2]
    header, fig_width = 56, max(width, 480)
    fig_height = height + header
    fig = _figure(figsize=(fig_width / DPI, fig_height / DPI))
    ax = fig.add_axes(((fig_width - width) / 2 / fig_width, 0,   # one image pixel per
                       width / fig_width, height / fig_height))  # screen pixel
    ax.imshow(mosaic, interpolation='nearest', aspect='equal')
    ax.set_axis_off()
    shown = {3: 'RGB', 1: 'grayscale'}.get(c, f'mean of {c} channels')
    fig.text(0.5, 1 - 18 / fig_height, title, ha='center', va='center', fontsize=12)
    fig.text(0.5, 1 - 40 / fig_height,
             f"{oc} filter{'s' if oc != 1 else ''} of {c}x{kh}x{kw}, each min-max "
             f"normalised, {shown}",
             ha='center', va='center', fontsize=9, color='dimgray')
    return _save_png(fig, path, 'plot_filters')


def _filter_tiles(w):
    """(OC, KH, KW, 3) RGB tiles in [0, 1], one per filter, normalised independently."""
    if w.shape[1] == 3:
        tiles = w.transpose(0, 2, 3, 1)
    else:
        tiles = w.mean(axis=1)[..., None]  # C == 1: the channel itself
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)
    return np.broadcast_to(tiles, tiles.shape[:3] + (3,))


def _mosaic(tiles, rows, cols, gap):
    """Tiles (N, H, W, 3) laid out row-major on a white grid, ``gap`` pixels apart.

    Each tile gets a 1-pixel gray frame, so that its white or gray border pixels stay
    distinguishable from the gaps.
    """
    tiles = np.pad(tiles, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=_FRAME)
    n, h, w, _ = tiles.shape
    step_h, step_w = h + gap, w + gap
    out = np.ones((rows * step_h + gap, cols * step_w + gap, 3))
    for i in range(n):
        top, left = gap + (i // cols) * step_h, gap + (i % cols) * step_w
        out[top:top + h, left:left + w] = tiles[i]
    return out


# ----------------------------------------------------------------------------- confusion
def confusion_matrix(true, pred, num_classes):
    """The (num_classes, num_classes) int64 count matrix: [i, j] = #(true == i, pred == j).

    ``true`` and ``pred`` are integer arrays of the same shape with values in
    [0, num_classes); rows are true classes, columns predicted ones.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"confusion_matrix: num_classes must be a positive int, "
                         f"got {num_classes!r}")
    k = int(num_classes)
    t = _int_array(true, 'confusion_matrix', 'true')
    p = _int_array(pred, 'confusion_matrix', 'pred')
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: true and pred must have the same shape, "
                         f"got {t.shape} and {p.shape}")
    _check_indices(t, k, 'confusion_matrix', 'true', f'num_classes={k}')
    _check_indices(p, k, 'confusion_matrix', 'pred', f'num_classes={k}')
    return np.bincount((t * k + p).ravel(), minlength=k * k).reshape(k, k)


@_serialised
def plot_confusion(matrix, class_names, path, normalize=True):
    """A confusion matrix (rows = true class, columns = predicted) as a PNG at ``path``.

    Cell colours are row-normalised (the fraction of each true class predicted as each
    class). For K <= 20 classes every cell shows its value: the row percentage when
    ``normalize`` is true, else the count. Class names label both axes (all of them up
    to 50 classes, an even subset beyond); the title gives the overall accuracy.
    """
    m = _real_array(matrix, 'plot_confusion', 'matrix')
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"plot_confusion: matrix must be square (K, K) with K >= 1, "
                         f"got shape {m.shape}")
    if np.any(m < 0):
        raise ValueError("plot_confusion: matrix holds counts and must not be negative")
    k = m.shape[0]
    names = list(class_names)
    if len(names) != k:
        raise ValueError(f"plot_confusion: got {len(names)} class_names for a matrix of "
                         f"shape {m.shape}")
    _target(path, 'plot_confusion')
    totals = m.sum(axis=1, keepdims=True)
    rates = m / np.where(totals > 0, totals, 1)

    side = min(max(5.0, 0.42 * k + 2.8), 14.0)
    fig = _figure(figsize=(side + 1.2, side), layout='constrained')
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label('fraction of the true class')
    if k <= 20:
        _write_cells(ax, m, rates, normalize)
    ticks = np.arange(k) if k <= 50 else np.unique(np.linspace(0, k - 1, 25).round().astype(int))
    labels = [_text(_short(names[i], 24)) for i in ticks]
    fontsize = 10 if k <= 12 else 8
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=45, ha='right', rotation_mode='anchor',
                       fontsize=fontsize)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    total, correct = m.sum(), np.trace(m)
    accuracy = f'{100 * correct / total:.2f}% ({correct:g}/{total:g})' if total else 'n/a'
    ax.set_title(f'Confusion matrix: accuracy {accuracy}'
                 + ('\ncells: % of the true class' if normalize and k <= 20 else ''))
    return _save_png(fig, path, 'plot_confusion')


def _write_cells(ax, m, rates, normalize):
    k = m.shape[0]
    fontsize = 11 if k <= 6 else 9 if k <= 12 else 7
    for i in range(k):
        for j in range(k):
            value = f'{100 * rates[i, j]:.{1 if k <= 10 else 0}f}' if normalize \
                else f'{m[i, j]:g}'
            ax.text(j, i, value, ha='center', va='center', fontsize=fontsize,
                    color='white' if rates[i, j] > 0.55 else 'black')


# ----------------------------------------------------------------------------- predictions
@_serialised
def plot_predictions(images, labels, top5_indices, top5_probs, class_names, path,
                     mean=None, std=None, n=16):
    """Test images with their top-5 predictions (figure 4 of AlexNet), PNG at ``path``.

    ``images`` is (N, C, H, W) with C = 1 (shown gray) or 3: uint8 pixels shown as they
    are, or floats that were normalised as (x - mean) / std per channel, which is undone
    when ``mean`` and ``std`` are given (sequences of C values, or scalars, on the [0, 1]
    pixel scale) before clipping to [0, 1]. ``labels`` (N,) are the true classes;
    ``top5_indices`` and ``top5_probs`` (N, k) the predicted classes, best first, and their
    probabilities. The first ``n`` images are drawn, each with its true label above and a
    bar chart of its k probabilities below; the bar of the true class, if among them, is red.
    """
    func = 'plot_predictions'
    shown = _images_for_display(images, mean, std)
    count = shown.shape[0]
    labels = _int_array(labels, func, 'labels')
    indices = _int_array(top5_indices, func, 'top5_indices')
    probs = _real_array(top5_probs, func, 'top5_probs')
    names = list(class_names)
    if labels.shape != (count,):
        raise ValueError(f"{func}: labels must have shape ({count},) to match images of "
                         f"shape {np.shape(images)}, got {labels.shape}")
    if indices.ndim != 2 or indices.shape[0] != count or indices.shape[1] == 0:
        raise ValueError(f"{func}: top5_indices must have shape ({count}, k) to match images "
                         f"of shape {np.shape(images)}, got {indices.shape}")
    if probs.shape != indices.shape:
        raise ValueError(f"{func}: top5_probs must have the shape of top5_indices "
                         f"{indices.shape}, got {probs.shape}")
    if np.any((probs < 0) | (probs > 1)):
        raise ValueError(f"{func}: top5_probs must be probabilities in [0, 1], "
                         f"got values in [{probs.min():g}, {probs.max():g}]")
    _check_indices(labels, len(names), func, 'labels', f'{len(names)} class_names')
    _check_indices(indices, len(names), func, 'top5_indices', f'{len(names)} class_names')
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{func}: n must be a positive int, got {n!r}")

    _target(path, func)
    count = min(count, int(n))
    rows, cols = _grid(count)
    fig = _figure(figsize=(2.3 * cols, 3.45 * rows + 0.5), layout='constrained')
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[2.1, 1.0] * rows)
    for i in range(count):
        r, c = divmod(i, cols)
        _prediction_cell(fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c]),
                         shown[i], labels[i], indices[i], probs[i], names)
    top1 = int(np.sum(indices[:count, 0] == labels[:count]))
    top5 = int(np.sum(np.any(indices[:count] == labels[:count, None], axis=1)))
    fig.suptitle(f'Top-{indices.shape[1]} predictions (red bar: true class); '
                 f'top-1 correct {top1}/{count}, top-{indices.shape[1]} {top5}/{count}',
                 fontsize=12)
    return _save_png(fig, path, func)


def _images_for_display(images, mean, std):
    """(N, H, W, 3) or (N, H, W) floats in [0, 1] from uint8 or normalised float NCHW."""
    func = 'plot_predictions'
    raw = np.asarray(images)
    if raw.ndim != 4 or raw.shape[1] not in (1, 3) or raw.shape[0] == 0:
        raise ValueError(f"{func}: images must be (N, C, H, W) with N >= 1 and C = 1 or 3, "
                         f"got shape {raw.shape}")
    if (mean is None) != (std is None):
        raise ValueError(f"{func}: give both mean and std (to undo the normalisation) "
                         f"or neither")
    if raw.dtype == np.uint8:
        x = raw / 255.0
    else:
        x = _real_array(raw, func, 'images')
        if mean is not None:
            c = x.shape[1]
            mean = _channel_stat(mean, c, 'mean')
            std = _channel_stat(std, c, 'std')
            x = x * std + mean
    x = np.clip(x, 0, 1)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def _channel_stat(value, channels, name):
    v = _real_array(value, 'plot_predictions', name).reshape(-1)
    if v.size not in (1, channels):
        raise ValueError(f"plot_predictions: {name} must have 1 or {channels} values (one per "
                         f"channel), got {v.size}")
    return np.broadcast_to(v, (channels,)).reshape(1, channels, 1, 1)


def _prediction_cell(image_ax, bar_ax, image, label, indices, probs, names):
    """One image titled with its true label, and its top-k bars (true class in red)."""
    gray = image.ndim == 2
    image_ax.imshow(image, cmap='gray' if gray else None, vmin=0, vmax=1,
                    interpolation='nearest')
    image_ax.set_title(_text(_short(names[label], 26)), fontsize=10, fontweight='bold')
    image_ax.set_axis_off()

    k = len(indices)
    colors = [TRUE_BAR_COLOR if index == label else BAR_COLOR for index in indices]
    bar_ax.barh(np.arange(k), probs, color=colors, height=0.8)
    for y, index in enumerate(indices):
        bar_ax.text(0.02, y, _text(_short(names[index], 22)), va='center', ha='left',
                    fontsize=7.5, fontweight='bold' if index == label else 'normal')
    bar_ax.set_xlim(0, 1)
    bar_ax.set_ylim(k - 0.5, -0.5)  # best prediction on top
    bar_ax.set_yticks([])
    bar_ax.set_xticks([0, 0.5, 1])
    bar_ax.tick_params(axis='x', labelsize=7, length=2, pad=1)
    bar_ax.grid(True, axis='x', alpha=0.3)
