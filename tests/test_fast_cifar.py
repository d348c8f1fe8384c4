"""vgg-fast-cifar and its recipe: the network, the whitening layer, the per-step schedule,
lookahead, alternating flips, reflect-padded translations, test-time augmentation, and the
`minidl train --model vgg-fast-cifar` command on tiny data."""
import json

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
import models
from minidl import recipes
from minidl.data import transforms as T
from minidl.train import tta_logits
from minidl.recipes import patches, whiten_init_
from models.fast_cifar import FastCIFAR
from test_cli import data, run  # noqa: F401  (the tiny-data fixture)
from helpers import winograd_tilings_and_gradients

try:
    import torch
except ImportError:
    torch = None


def small_net(widths=(8, 16, 16), **kwargs):
    minidl.manual_seed(0)
    return FastCIFAR(widths=widths, **kwargs)


# ----------------------------------------------------------------------------- the network
def test_shapes_parameters_and_frozen_layers():
    model = models.build('vgg-fast-cifar')
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32), np.float32))
    assert model(x).shape == (2, 10)
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen == ['groups.0.norm1.weight', 'groups.0.norm2.weight',
                      'groups.1.norm1.weight', 'groups.1.norm2.weight',
                      'groups.2.norm1.weight', 'groups.2.norm2.weight', 'whiten.weight']
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1:]
    assert all(c.bias is None and c.padding == 'same' for c in convs)
    assert model.head.bias is None and model.head.weight.shape == (10, 256)
    # airbench94's net: 24*3*2*2 + 24 whitening, 3x3 convs, 10x256 head (BN: 2 per channel)
    convs_n = 9 * (24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 256 * 256 + 256 * 256)
    bn = 2 * 2 * (64 + 256 + 256)
    assert sum(p.data.size for p in model.parameters()) == 24 * 12 + 24 + convs_n + bn + 2560


def test_each_conv_starts_as_the_identity_on_its_first_channels():
    """dirac_ on the first in_channels filters: conv(x)[:, :C_in] == x (an implicit
    residual connection at initialisation)."""
    model = small_net()
    conv = model.groups[1].conv1           # 8 -> 16 channels
    x = minidl.tensor(np.random.default_rng(1).standard_normal((2, 8, 7, 7), np.float32))
    y = conv(x).data
    np.testing.assert_array_equal(y[:, :8], x.data)
    assert np.abs(y[:, 8:]).max() > 0      # the other filters are random


@pytest.mark.parametrize('widths', [(8, 16, 16), (64, 64, 64)])  # im2col; Winograd F(4x4)
def test_torch_twin_computes_the_same_logits(widths):
    if torch is None:
        pytest.skip('needs torch')
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
    from train_step import fast_cifar_twin
    model = small_net(widths=widths).double()
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32))
    twin = fast_cifar_twin(model).double()
    model.train(), twin.train()
    ours = model(minidl.tensor(x)).data
    theirs = twin(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_wide_convolutions_take_winograd_f4_by_default_and_the_model_can_choose(monkeypatch):
    results = winograd_tilings_and_gradients(lambda tile: FastCIFAR(
        widths=(64, 64, 64), **({} if tile == 4 else {'winograd': tile})), monkeypatch)
    # F(4x4): the 64 -> 64 convolutions (conv2 of group 1, both of groups 2 and 3),
    # forward and input gradient; the 24 -> 64 conv1 of group 1 goes by im2col, and so
    # does every one with F(2x2), which needs 128 channels
    assert [results[t][0] for t in (4, 2, 0)] == [[4] * 10, [], []]


@pytest.mark.parametrize('tile', [1, 3, True, '4', None])
def test_the_model_refuses_other_winograd_tiles(tile):
    with pytest.raises(ValueError, match=r'FastCIFAR: winograd must be 0 \(im2col\), 2 or 4'):
        FastCIFAR(winograd=tile)


def test_benchmark_frozen_case_freezes_the_whitening_bias_in_both_frameworks():
    """train_step.py's vgg-fast-cifar-frozen: the step of epochs 4-10, nothing trains in
    the first layer, in minidl and in its torch twin."""
    if torch is None:
        pytest.skip('needs torch')
    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
    from train_step import build_minidl, fast_cifar_twin, input_size
    model = build_minidl('vgg-fast-cifar-frozen')
    assert not model.whiten.bias.requires_grad and not model.whiten.weight.requires_grad
    assert build_minidl('vgg-fast-cifar').whiten.bias.requires_grad
    twin = fast_cifar_twin(model)
    assert not twin.whiten.bias.requires_grad and not twin.whiten.weight.requires_grad
    assert twin.groups[0].conv1.weight.requires_grad
    assert input_size('vgg-fast-cifar-frozen') == input_size('vgg-fast-cifar') == 32


# ----------------------------------------------------------------------------- whitening
def test_whitening_makes_the_patches_uncorrelated_with_unit_variance():
    rng = np.random.default_rng(3)
    mix = rng.standard_normal((3, 3))     # correlated colour channels
    images = np.einsum('dc,nchw->ndhw', mix, rng.standard_normal((200, 3, 8, 8)))
    images += np.roll(images, 1, axis=3)  # and correlated neighbours
    conv = nn.Conv2d(3, 24, 2).double()
    whiten_init_(conv, images, eps=0)
    out = F.conv2d(minidl.tensor(images), conv.weight).data  # (N, 24, 7, 7), no bias
    first = out[:, :12].transpose(0, 2, 3, 1).reshape(-1, 12)
    cov = first.T @ first / len(first)
    np.testing.assert_allclose(cov, np.eye(12), atol=1e-8)
    np.testing.assert_allclose(out[:, 12:], -out[:, :12])
    # with eps > 0 the variances are lambda / (lambda + eps): largest first
    whiten_init_(conv, images, eps=1.0)
    first = F.conv2d(minidl.tensor(images), conv.weight).data[:, :12]
    var = (first ** 2).mean(axis=(0, 2, 3))
    assert np.all(np.diff(var) < 0) and var[0] < 1


def test_whitening_rejects_a_conv_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"whiten_init_: expected a conv with 24 filters"):
        whiten_init_(nn.Conv2d(3, 12, 2), np.zeros((4, 3, 8, 8)))


def test_patches_are_every_window_in_channel_row_column_order():
    x = np.arange(2 * 3 * 4 * 4, dtype=float).reshape(2, 3, 4, 4)
    p = patches(x, 2)
    assert p.shape == (2 * 3 * 3, 12)
    np.testing.assert_array_equal(p[4], x[0, :, 1:3, 1:3].reshape(-1))


# ----------------------------------------------------------------------------- schedule
def test_triangle_rises_to_one_then_falls_to_the_end_value():
    total = 100
    f = [recipes.triangle(t, total) for t in range(total + 1)]
    assert f[0] == pytest.approx(0.2) and f[23] == pytest.approx(1.0)
    assert f[100] == pytest.approx(0.07)
    assert f[10] == pytest.approx(0.2 + 0.8 * 10 / 23)
    assert f[50] == pytest.approx(1 - 0.93 * 27 / 77)


def test_param_groups_scale_the_batchnorm_biases_and_keep_their_decay_per_step():
    model = small_net()
    groups = recipes.param_groups(model, lr=1.5, weight_decay=0.002, bias_scale=64)
    norm_ids = {id(m.norm1.bias) for m in model.groups} | {id(m.norm2.bias)
                                                             for m in model.groups}
    assert {id(p) for p in groups[1]['params']} == norm_ids
    assert groups[0]['lr'] == 1.5 and groups[0]['weight_decay'] == 0.002
    assert groups[1]['lr'] == 96 and groups[1]['lr'] * groups[1]['weight_decay'] == \
        pytest.approx(1.5 * 0.002)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g['params']} == trainable


def test_triangle_lr_sets_each_steps_rate_and_resumes():
    model = small_net()
    opt = minidl.optim.SGD(recipes.param_groups(model, 1.0, 0.0, 10.0), lr=1.0)
    sched = recipes.TriangleLR(opt, 50)
    rates = []
    for step in range(20):
        rates.append([g['lr'] for g in opt.param_groups])
        sched.on_step_end(None, 0, step)
    assert rates[0] == pytest.approx([0.2, 2.0])
    assert rates[11] == pytest.approx([recipes.triangle(11, 50), 10 * recipes.triangle(11, 50)])
    again = recipes.TriangleLR(opt, 50)
    again.load_state_dict(sched.state_dict())
    assert [g['lr'] for g in opt.param_groups] == pytest.approx(
        [recipes.triangle(20, 50), 10 * recipes.triangle(20, 50)])


# ----------------------------------------------------------------------------- lookahead
def test_lookahead_averages_every_fifth_step_from_its_start_epoch():
    """Steps 1-10 are epoch 0 (nothing happens), step 15 copies the weights (A = W),
    step 20 averages: A = rho A + (1 - rho) W with rho = 0.95^5 (20/20)^3, and W = A."""
    model = nn.Linear(2, 1, bias=False).double()
    look = recipes.Lookahead(model, total_steps=20, start_epoch=1, every=5)
    w = model.weight.data
    w0 = w.copy()
    seen = []
    for step in range(20):
        w += 1.0                           # the "optimizer"
        look.on_step_end(None, step // 10, step)
        seen.append(w - w0)
    assert [float(s[0, 0]) for s in seen[:19]] == list(range(1, 20))  # untouched so far
    rho = 0.95 ** 5
    np.testing.assert_allclose(seen[19], 15 * rho + 20 * (1 - rho))
    w += 3.0
    look.on_epoch_end(None, 1)             # the epoch's end: back to the average
    np.testing.assert_allclose(w - w0, 15 * rho + 20 * (1 - rho))


def test_lookahead_state_round_trips_through_a_checkpoint(tmp_path):
    model = nn.Linear(3, 2).double()
    look = recipes.Lookahead(model, total_steps=10, start_epoch=0, every=1)
    for step in range(3):
        model.weight.data += 0.5
        look.on_step_end(None, 0, step)
    minidl.save(look.state_dict(), tmp_path / 'look.npz')
    other = recipes.Lookahead(model, total_steps=10, start_epoch=0, every=1)
    other.load_state_dict(minidl.load(tmp_path / 'look.npz'))
    assert other.steps == 3
    for name, array in look.average.ema.items():
        np.testing.assert_array_equal(other.average.ema[name], array)


# ----------------------------------------------------------------------------- data
def test_alternating_flip_mirrors_every_image_on_odd_epochs_only():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.uint8).reshape(2, 1, 2, 3)
    flip = T.Compose([T.AlternatingFlip()])
    flip.set_epoch(0)
    np.testing.assert_array_equal(flip(x, None), x)
    flip.set_epoch(3)
    np.testing.assert_array_equal(flip(x, None), x[..., ::-1])


def test_flip_half_mirrors_a_seeded_half_in_place():
    images = np.random.default_rng(0).integers(0, 255, (1000, 1, 2, 2), dtype=np.uint8)
    before = images.copy()
    mask = T.flip_half_(images, seed=5)
    assert 400 < mask.sum() < 600
    np.testing.assert_array_equal(images[mask], before[mask][..., ::-1])
    np.testing.assert_array_equal(images[~mask], before[~mask])
    np.testing.assert_array_equal(T.flip_half_(before.copy(), seed=5), mask)


def test_the_loader_tells_the_transform_its_epoch():
    from minidl.data import DataLoader

    class Set:
        images = np.arange(4 * 1 * 1 * 2, dtype=np.uint8).reshape(4, 1, 1, 2)
        labels = np.zeros(4, np.int64)

        def __len__(self):
            return 4
    loader = DataLoader(Set(), 4, transform=T.Compose([T.AlternatingFlip(), T.ToFloat()]))
    first, second = (next(iter(loader))[0].data for _ in range(2))
    np.testing.assert_array_equal(second, first[..., ::-1])


def test_reflect_padded_crop_is_a_window_of_the_mirrored_border():
    x = np.random.default_rng(0).integers(0, 255, (64, 2, 5, 5), dtype=np.uint8)
    crop = T.RandomCrop(5, 2, padding_mode='reflect')
    y = crop(x, np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode='reflect')
    windows = [padded[:, :, i:i + 5, j:j + 5] for i in range(5) for j in range(5)]
    for n in range(len(x)):
        assert any(np.array_equal(y[n], w[n]) for w in windows)
    assert len({y[n].tobytes() for n in range(len(x))}) > 10
    if torch is not None:  # torch's reflect padding is the same mirror
        t = torch.nn.functional.pad(torch.from_numpy(x.astype(np.float32)), (2, 2, 2, 2),
                                    mode='reflect').numpy()
        np.testing.assert_array_equal(t, padded)
    with pytest.raises(ValueError, match="padding_mode must be 'constant' or 'reflect'"):
        T.RandomCrop(5, 2, padding_mode='edge')


# ----------------------------------------------------------------------------- TTA
def test_evaluate_every_second_epoch_and_the_last(data, tmp_path):
    out = tmp_path / 'run'
    assert run('train', *FAST[:4], '--epochs', 3, '--eval-every', 2, '--tta', 0,
               '--out', out) == 0
    history = json.loads((out / 'history.json').read_text())
    assert ['val_acc' in r for r in history] == [False, True, True]


def test_tta_levels_average_the_six_views():
    class Probe(nn.Module):  # logits = the top-left pixel and the mean, per image
        def forward(self, x):
            return F.concat([x[:, 0, 0, 0:1], x.mean(axis=(1, 2, 3)).reshape(-1, 1)], axis=1)
    x = np.random.default_rng(4).standard_normal((3, 1, 4, 4))
    model = Probe()
    out0 = tta_logits(model, minidl.tensor(x), 0).data
    out1 = tta_logits(model, minidl.tensor(x), 1).data
    out2 = tta_logits(model, minidl.tensor(x), 2).data
    np.testing.assert_allclose(out0[:, 0], x[:, 0, 0, 0])
    np.testing.assert_allclose(out1[:, 0], (x[:, 0, 0, 0] + x[:, 0, 0, 3]) / 2)
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode='reflect')
    views = [x, p[..., :4, :4], p[..., 2:, 2:]]
    level1 = [(v[:, 0, 0, 0] + v[:, 0, 0, -1]) / 2 for v in views]
    np.testing.assert_allclose(out2[:, 0], level1[0] / 2 + (level1[1] + level1[2]) / 4)
    with pytest.raises(ValueError, match='tta_logits: level must be one of'):
        tta_logits(model, minidl.tensor(x), 3)


def test_evaluate_can_keep_the_probabilities_it_scored():
    from minidl.data import DataLoader
    from minidl.train import Trainer, predict

    class Images:  # a tiny dataset: 6 images, labels 0..2
        images = np.random.default_rng(0).integers(0, 256, (6, 3, 8, 8), dtype=np.uint8)
        labels = np.arange(6) % 3

        def __len__(self):
            return 6
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))
    loader = DataLoader(Images(), 4)
    result = Trainer(model, None, None).evaluate(loader, keep_probs=True)
    probs, labels = predict(model, loader)
    np.testing.assert_allclose(result['probs'], probs)
    np.testing.assert_array_equal(result['labels'], labels)
    assert result['acc'] == np.mean(probs.argmax(1) == labels)


# ----------------------------------------------------------------------------- the command
FAST = ('--model', 'vgg-fast-cifar', '--batch-size', 8, '--epochs', 4)


def test_train_runs_the_whole_recipe_and_reports_tta(data, tmp_path, capsys):
    out = tmp_path / 'run'
    assert run('train', *FAST, '--out', out) == 0
    printed = capsys.readouterr().out
    assert 'with test-time augmentation (level 2)' in printed
    history = json.loads((out / 'history.json').read_text())
    assert len(history) == 4 and 'val_acc_tta' in history[-1]
    # the recipe tests after the last epoch only (--eval-every 0)
    assert ['val_acc' in r for r in history] == [False, False, False, True]
    assert (out / 'confusion.png').exists()
    cfg = json.loads((out / 'config.json').read_text())
    assert cfg['schedule'] == 'triangle' and cfg['lookahead'] and cfg['whiten']
    # the whitening filters were computed (not the random init), and are kept frozen
    state = minidl.load(out / 'checkpoint.npz')
    w = state['model']['whiten.weight']
    np.testing.assert_allclose(w[12:], -w[:12])
    assert run('eval', '--checkpoint', out / 'best.npz', '--tta') == 0
    assert 'with test-time augmentation (level 2)' in capsys.readouterr().out


def test_an_interrupted_recipe_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    """The recipe's callbacks (step count of the schedule, the lookahead average) are in
    the checkpoint: stopped inside epoch 2 and resumed == run through."""
    from minidl import cli
    build = cli.build_callbacks

    class StopInEpoch2:
        def __init__(self, armed):
            self.armed = armed

        def on_step_end(self, trainer, epoch, step):
            if self.armed and (epoch, step) == (1, 2):
                trainer.stop_requested = True

    def with_stopper(armed):
        return lambda *args: build(*args) + [StopInEpoch2(armed)]
    a, b = tmp_path / 'a', tmp_path / 'b'
    monkeypatch.setattr(cli, 'build_callbacks', with_stopper(False))
    assert run('train', *FAST, '--out', a) == 0
    monkeypatch.setattr(cli, 'build_callbacks', with_stopper(True))
    assert run('train', *FAST, '--out', b) == 130
    assert minidl.load(b / 'checkpoint.npz')['step'] == 3
    monkeypatch.setattr(cli, 'build_callbacks', with_stopper(False))
    assert run('train', '--resume', '--out', b) == 0
    wa = minidl.load(a / 'checkpoint.npz')['model']
    wb = minidl.load(b / 'checkpoint.npz')['model']
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)


@pytest.mark.parametrize('argv, message', [
    (('--model', 'alexnet-cifar', '--no-whiten'),
     "--no-whiten applies to vgg-fast-cifar only (its whitening layer and recipe), not to "
     "alexnet-cifar"),
    (('--model', 'vgg-fast-cifar', '--translate', '9'), '--translate must be an integer'),
    (('--model', 'vgg-fast-cifar', '--warmup', '2'), '--warmup does not apply'),
    (('--model', 'vgg-fast-cifar', '--eval-every', '-1'), '--eval-every must be an integer'),
])
def test_recipe_settings_that_cannot_apply_are_one_line_errors(data, tmp_path, argv, message,
                                                               capsys):
    assert run('train', *argv, '--epochs', 1, '--out', tmp_path / 'r') == 2
    assert message in capsys.readouterr().err
