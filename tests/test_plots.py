"""Specification of minidl.plots: training figures written atomically as PNG files."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

matplotlib = pytest.importorskip('matplotlib')
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from minidl.plots import (confusion_matrix, plot_confusion, plot_filters,  # noqa: E402
                          plot_history, plot_predictions)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
         'truck']
RED = np.array([0xd6, 0x27, 0x28]) / 255  # plots.TRUE_BAR_COLOR, the true class's bar


def read_png(path):
    """The RGB pixels of the PNG at ``path``, checked to be a real, non-blank picture."""
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= 100 and image.shape[1] >= 100
    assert np.ptp(image[..., :3]) > 0.5, "the picture is (nearly) blank"
    return image[..., :3]


def has_color(image, rgb, tol=0.02):
    return bool(np.any(np.all(np.abs(image - rgb) <= tol, axis=-1)))


def history(epochs=6, validation=True, lr=True):
    rows = []
    for e in range(1, epochs + 1):
        row = {'epoch': e, 'train_loss': 2.0 / e, 'train_acc': 0.9 - 0.5 / e}
        if validation:
            row.update(val_loss=2.2 / e, val_acc=0.8 - 0.5 / e - 0.02 * (e == 4),
                       val_top5=0.95 - 0.3 / e)
        if lr:
            row['lr'] = 0.01 if e < 4 else 0.001
        rows.append(row)
    return rows


def predictions(count=6, seed=0):
    """uint8 noise images and top-5 predictions over NAMES; the true class is in the
    top 5 of the even-numbered images only."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 3, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    top5 = np.array([[(label + 1 + j) % 10 for j in range(5)] for label in labels])
    top5[::2, 1] = labels[::2]
    probs = np.sort(rng.dirichlet(np.ones(10), count), axis=1)[:, ::-1][:, :5]
    return images, labels, top5, probs


# One small, valid call of each plot function, for the tests every function must pass.
CALLS = {
    'plot_history': lambda path: plot_history(history(), path),
    'plot_filters': lambda path: plot_filters(np.random.default_rng(0).standard_normal(
        (8, 3, 5, 5)), path),
    'plot_confusion': lambda path: plot_confusion(np.array([[5, 1], [2, 7]]), ['a', 'b'],
                                                  path),
    'plot_predictions': lambda path: plot_predictions(*predictions(2), NAMES, path),
}


# ----------------------------------------------------------------------------- every plot
@pytest.mark.parametrize('name', CALLS)
def test_writes_a_png_and_returns_its_path(name, tmp_path, monkeypatch):
    # Drawn without pyplot (no global figure state) and without choosing a backend.
    monkeypatch.setitem(sys.modules, 'matplotlib.pyplot', None)  # importing it fails
    monkeypatch.setattr(matplotlib, 'use', None)                 # calling it fails
    path = str(tmp_path / f'{name}.png')
    assert CALLS[name](path) == path
    read_png(path)
    assert os.listdir(tmp_path) == [f'{name}.png']  # no temporary file left behind


@pytest.mark.parametrize('name', CALLS)
def test_failed_render_keeps_the_existing_file_and_leaves_no_temporary(name, tmp_path,
                                                                       monkeypatch):
    path = tmp_path / 'figure.png'
    path.write_bytes(b'the previous figure')

    def half_written(self, f, **kwargs):
        f.write(b'\x89PNG half of it')
        raise RuntimeError('renderer crashed')
    monkeypatch.setattr(FigureCanvasAgg, 'print_png', half_written)
    with pytest.raises(RuntimeError, match='renderer crashed'):
        CALLS[name](path)
    assert path.read_bytes() == b'the previous figure'
    assert os.listdir(tmp_path) == ['figure.png']


def test_replaces_an_existing_file_and_accepts_pathlike(tmp_path):
    path = tmp_path / 'figure.png'
    path.write_bytes(b'old')
    assert CALLS['plot_confusion'](path) == str(path)
    read_png(path)
    assert os.listdir(tmp_path) == ['figure.png']


@pytest.mark.parametrize('name', CALLS)
def test_missing_directory_is_a_clear_error(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{name}: directory .* does not exist"):
        CALLS[name](tmp_path / 'no' / 'such' / 'dir.png')


@pytest.mark.parametrize('name', CALLS)
def test_without_matplotlib_plots_raise_an_import_error_with_the_install_hint(
        name, tmp_path, monkeypatch):
    for module in ('matplotlib', 'matplotlib.figure', 'matplotlib.backends.backend_agg'):
        monkeypatch.setitem(sys.modules, module, None)  # makes importing it fail
    with pytest.raises(ImportError, match=r"minidl.plots needs matplotlib: "
                                          r"pip install 'minidl\[plots\]'"):
        CALLS[name](tmp_path / 'figure.png')
    assert os.listdir(tmp_path) == []
    assert confusion_matrix([0, 1], [1, 1], 2).tolist() == [[0, 1], [0, 1]]  # NumPy only


def test_importing_minidl_plots_does_not_import_matplotlib():
    script = ("import sys, minidl.plots\n"
              "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n")
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr


def test_plots_can_be_drawn_from_several_threads_at_once(tmp_path):
    errors = []

    def draw(i):
        try:
            m = np.array([[i + 1, 2], [3, 4]])
            plot_confusion(m, ['a', 'b'], tmp_path / f'{i}.png')
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=draw, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(2):
        read_png(tmp_path / f'{i}.png')


# ----------------------------------------------------------------------------- history
def test_history_with_lr_gets_a_third_panel(tmp_path):
    with_lr = read_png(plot_history(history(lr=True), tmp_path / 'a.png'))
    without = read_png(plot_history(history(lr=False), tmp_path / 'b.png'))
    assert with_lr.shape[1] > 1.3 * without.shape[1]


@pytest.mark.parametrize('rows', [
    history(validation=False, lr=False),                                  # keys missing
    [{k: (v if k.startswith('train') or i % 2 else None) for k, v in r.items() if k != 'epoch'}
     for i, r in enumerate(history())],               # no 'epoch'; val and lr every 2nd epoch
    [{'epoch': 1, 'train_loss': 1.0, 'lr': 0.1}],                         # a single point
], ids=['no-validation', 'sparse-and-no-epoch', 'one-epoch'])
def test_history_missing_values_are_fine(rows, tmp_path):
    read_png(plot_history(rows, tmp_path / 'h.png'))


@pytest.mark.parametrize('bad, error, message', [
    ([], ValueError, r"plot_history: history must be a non-empty list .* got a list \(empty\)"),
    ({'train_loss': [1.0]}, ValueError, "non-empty list of per-epoch dicts, got a dict"),
    ([{'epoch': 1}, 3.0], TypeError, r"plot_history: history\[1\] must be a dict, got float"),
    ([{'epoch': 1, 'val_acc': 63.2}], ValueError,
     r"accuracies must be fractions in \[0, 1\], got history\[0\]\['val_acc'\] = 63.2"),
    ([{'epoch': 1, 'train_loss': 'low'}], TypeError,
     r"history\[0\]\['train_loss'\] must be a number or None, got 'low'"),
])
def test_history_errors(bad, error, message, tmp_path):
    with pytest.raises(error, match=message):
        plot_history(bad, tmp_path / 'h.png')
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- filters
def test_filters_rgb_show_each_filter_in_its_own_colours(tmp_path):
    w = np.zeros((4, 3, 3, 3))
    w[0, 0] = 5.0             # red channel only: normalised to pure red
    w[1, 1] = -2.0            # everything but green: normalised to magenta
    w[2] = 7.0                # a constant filter: mid-gray
    w[3] = np.arange(27).reshape(3, 3, 3)
    image = read_png(plot_filters(w, tmp_path / 'f.png'))
    assert has_color(image, [1, 0, 0])
    assert has_color(image, [1, 0, 1])
    assert has_color(image, [0.5, 0.5, 0.5])


@pytest.mark.parametrize('channels', [1, 4])
def test_filters_with_other_than_three_channels_are_grayscale(channels, tmp_path):
    w = np.random.default_rng(1).standard_normal((12, channels, 5, 5))
    image = read_png(plot_filters(w, tmp_path / 'f.png'))
    assert np.array_equal(image, np.broadcast_to(image[..., :1], image.shape))  # R = G = B


def test_filters_with_four_channels_show_the_channel_mean(tmp_path):
    w = np.random.default_rng(2).standard_normal((6, 4, 5, 5))
    mean = read_png(plot_filters(w, tmp_path / 'a.png', title='same'))
    single = read_png(plot_filters(w.mean(axis=1, keepdims=True), tmp_path / 'b.png',
                                   title='same'))
    assert mean.shape == single.shape
    below_header = slice(60, None)  # the subtitle names the channels, so it differs
    assert np.array_equal(mean[below_header], single[below_header])


def test_filters_are_normalised_independently(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((9, 3, 5, 5))
    scale = rng.uniform(0.001, 1000, (9, 1, 1, 1))
    shift = rng.uniform(-50, 50, (9, 1, 1, 1))
    a = read_png(plot_filters(w, tmp_path / 'a.png'))
    b = read_png(plot_filters(w * scale + shift, tmp_path / 'b.png'))
    assert np.abs(a - b).max() <= 1 / 255 + 1e-6


def test_small_kernels_are_magnified_with_nearest_neighbour(tmp_path):
    checker = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)
    w = np.broadcast_to(checker, (64, 1, 3, 3))
    grid = read_png(plot_filters(w, tmp_path / 'f.png'))[60:]  # below the title
    black = np.all(grid == 0, axis=-1).sum()
    assert black >= 64 * 5 * 15 * 15  # each 0 of each kernel: a black block >= 15x15 px
    colors = np.unique(grid.reshape(-1, 3), axis=0)
    assert len(colors) == 3, "blurred: colours other than black, white and the frames' gray"


def test_filters_of_alexnet_size(tmp_path):
    w = np.random.default_rng(4).standard_normal((96, 3, 11, 11)).astype(np.float32)
    image = read_png(plot_filters(w, tmp_path / 'f.png'))
    assert image.shape[1] >= 10 * 11 * 4  # 10 columns of 11x11 filters, magnified


@pytest.mark.parametrize('weight, message', [
    (np.zeros((3, 3)), r"plot_filters: weight must be a non-empty 4-D array .* "
                       r"got shape \(3, 3\)"),
    (np.zeros((0, 3, 3, 3)), r"got shape \(0, 3, 3, 3\)"),
    (np.full((1, 1, 3, 3), np.nan), "plot_filters: weight contains NaN"),
])
def test_filters_errors(weight, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        plot_filters(weight, tmp_path / 'f.png')


# ----------------------------------------------------------------------------- confusion
def test_confusion_matrix_counts_pairs_like_a_brute_force_loop():
    rng = np.random.default_rng(5)
    true, pred = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=np.int64)
    for t, p in zip(true, pred):
        expected[t, p] += 1
    got = confusion_matrix(true, pred, 7)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    assert np.array_equal(confusion_matrix(true.reshape(20, 25), pred.reshape(20, 25), 7),
                          expected)
    assert np.array_equal(confusion_matrix([], [], 3), np.zeros((3, 3)))


@pytest.mark.parametrize('true, pred, k, error, message', [
    ([0, 1], [0], 2, ValueError, r"true and pred must have the same shape, got \(2,\) and \(1,\)"),
    ([0, 5], [0, 1], 3, ValueError, r"true must be in \[0, 3\) .* found 5"),
    ([0, 1], [-1, 1], 3, ValueError, r"pred must be in \[0, 3\) .* found -1"),
    ([0.0, 1.0], [0, 1], 2, TypeError, "true must hold integers, got dtype float64"),
    ([0], [0], 0, ValueError, "num_classes must be a positive int, got 0"),
])
def test_confusion_matrix_errors(true, pred, k, error, message):
    with pytest.raises(error, match=f"confusion_matrix: {message}"):
        confusion_matrix(true, pred, k)


@pytest.mark.parametrize('normalize', [True, False])
def test_confusion_plot_with_cell_values(normalize, tmp_path):
    rng = np.random.default_rng(6)
    true = rng.integers(0, 10, 400)
    pred = np.where(rng.random(400) < 0.7, true, rng.integers(0, 10, 400))
    m = confusion_matrix(true, pred, 10)
    m[3] = 0  # a class that never occurs
    read_png(plot_confusion(m, NAMES, tmp_path / 'c.png', normalize=normalize))


def test_confusion_plot_of_many_classes_and_odd_names(tmp_path):
    m = np.eye(21, dtype=int) * 5 + 1  # more than 20 classes: no values in the cells
    names = [f'${i} bill' if i % 2 else f'a very long class name number {i}' for i in range(21)]
    read_png(plot_confusion(m, names, tmp_path / 'c.png'))


@pytest.mark.parametrize('matrix, names, message', [
    (np.ones((3, 4)), 'abc', r"matrix must be square \(K, K\) with K >= 1, got shape \(3, 4\)"),
    (np.ones(3), 'abc', r"matrix must be square \(K, K\) with K >= 1, got shape \(3,\)"),
    (np.ones((3, 3)), ['a', 'b'], r"got 2 class_names for a matrix of shape \(3, 3\)"),
    (-np.ones((2, 2)), 'ab', "matrix holds counts and must not be negative"),
])
def test_confusion_plot_errors(matrix, names, message, tmp_path):
    with pytest.raises(ValueError, match=f"plot_confusion: {message}"):
        plot_confusion(matrix, names, tmp_path / 'c.png')


# ----------------------------------------------------------------------------- predictions
def test_normalised_float_images_are_shown_like_the_uint8_originals(tmp_path):
    images, labels, top5, probs = predictions(2)
    mean, std = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])
    floats = ((images / 255 - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
    a = read_png(plot_predictions(images, labels, top5, probs, NAMES, tmp_path / 'a.png'))
    b = read_png(plot_predictions(floats, labels, top5, probs, NAMES, tmp_path / 'b.png',
                                  mean=mean, std=std))
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 2 / 255 + 1e-6


def test_predictions_of_normalised_one_channel_images(tmp_path):
    images, labels, top5, probs = predictions(2)
    floats = ((images[:, :1] / 255 - 0.5) / 0.25).astype(np.float32)
    read_png(plot_predictions(floats, labels, top5, probs, NAMES, tmp_path / 'p.png',
                              mean=0.5, std=0.25))


def test_the_true_class_bar_is_red_only_when_in_the_top_five(tmp_path):
    images, labels, top5, probs = predictions(2)       # image 0: true class in its top 5
    gray = images[:, :1]                  # uint8, one channel: no red in the pictures
    hit = read_png(plot_predictions(gray, labels, top5, probs, NAMES, tmp_path / 'a.png'))
    miss = read_png(plot_predictions(gray[1:], labels[1:], top5[1:], probs[1:], NAMES,
                                     tmp_path / 'b.png'))            # image 1: it is not
    assert has_color(hit, RED) and not has_color(miss, RED, tol=0.1)


def test_predictions_draw_at_most_n_images(tmp_path):
    many = read_png(plot_predictions(*predictions(3), NAMES, tmp_path / 'a.png', n=2))
    few = read_png(plot_predictions(*predictions(3), NAMES, tmp_path / 'b.png', n=1))
    assert few.shape[1] < many.shape[1]


@pytest.mark.parametrize('change, message', [
    (dict(images=np.zeros((2, 3, 8))), r"images must be \(N, C, H, W\) .* got shape \(2, 3, 8\)"),
    (dict(images=np.zeros((2, 2, 8, 8))), r"images must be \(N, C, H, W\) with N >= 1 and C = 1 "
                                          r"or 3, got shape \(2, 2, 8, 8\)"),
    (dict(labels=np.zeros(3, int)), r"labels must have shape \(2,\) to match images of shape "
                                    r"\(2, 3, 16, 16\), got \(3,\)"),
    (dict(top5=np.zeros((2,), int)), r"top5_indices must have shape \(2, k\) .* got \(2,\)"),
    (dict(probs=np.zeros((2, 4))), r"top5_probs must have the shape of top5_indices "
                                   r"\(2, 5\), got \(2, 4\)"),
    (dict(probs=np.full((2, 5), 20.0)), r"top5_probs must be probabilities in \[0, 1\], "
                                        r"got values in \[20, 20\]"),
    (dict(top5=np.full((2, 5), 10)), r"top5_indices must be in \[0, 10\) "
                                     r"\(10 class_names\), found 10"),
    (dict(images=np.zeros((2, 3, 16, 16)), mean=0.5), "give both mean and std"),
    (dict(images=np.zeros((2, 3, 16, 16)), mean=[0.5, 0.5], std=[1, 1, 1]),
     "mean must have 1 or 3 values"),
    (dict(n=0), "n must be a positive int, got 0"),
])
def test_predictions_errors(change, message, tmp_path):
    images, labels, top5, probs = predictions(2)
    args = dict(images=images, labels=labels, top5=top5, probs=probs, mean=None, std=None, n=16)
    args.update(change)
    with pytest.raises(ValueError, match=f"plot_predictions: {message}"):
        plot_predictions(args['images'], args['labels'], args['top5'], args['probs'], NAMES,
                         tmp_path / 'p.png', mean=args['mean'], std=args['std'], n=args['n'])
    assert os.listdir(tmp_path) == []
