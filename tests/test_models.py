"""The model zoo: exact parameter counts, output shapes, the paper's feature-map sizes."""
import numpy as np
import pytest

import minidl
import models
from helpers import winograd_tilings_and_gradients

PARAMETERS = {
    'alexnet': 62_378_344, 'alexnet-2gpu': 60_965_224,
    'vgg-a': 132_863_336, 'vgg-a-lrn': 132_863_336, 'vgg-b': 133_047_848,
    'vgg-c': 133_638_952, 'vgg-d': 138_357_544, 'vgg-e': 143_667_240,
    'vgg11': 132_863_336, 'vgg13': 133_047_848, 'vgg16': 138_357_544, 'vgg19': 143_667_240,
}
IMAGENET_224 = [n for n in models.names() if models.INPUT_SIZE[n] == 224]
CIFAR_32 = [n for n in models.names() if models.INPUT_SIZE[n] == 32]


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', sorted(PARAMETERS))
def test_parameter_counts_match_the_papers(name):
    assert _count(models.build(name)) == PARAMETERS[name]


def test_every_name_builds_and_unknown_names_list_the_known_ones():
    assert {'alexnet', 'alexnet-2gpu', 'alexnet-cifar', 'alexnet-cifar-2class', 'vgg-a',
            'vgg-a-lrn', 'vgg-b', 'vgg-c', 'vgg-d', 'vgg-e', 'vgg11', 'vgg13', 'vgg16',
            'vgg19', 'vgg11-cifar', 'vgg16-cifar', 'vgg11-bn-cifar',
            'vgg16-bn-cifar'} <= set(models.names())
    with pytest.raises(ValueError, match="unknown model 'resnet'.*alexnet-cifar.*vgg16"):
        models.build('resnet')


@pytest.mark.parametrize('bad', [0, -1, 2.5, True, '10'])
def test_build_refuses_a_number_of_classes_that_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"models.build: num_classes must be a positive "
                                         r"integer, got " + repr(bad).replace('.', r'\.')):
        models.build('alexnet-cifar', num_classes=bad)


def test_build_without_num_classes_gives_the_models_own_head():
    assert models.build('alexnet-cifar-2class')(minidl.Tensor(
        np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 2)


@pytest.mark.parametrize('bad', [0, -1, float('nan')])
def test_alexnet_cifar_refuses_a_width_that_is_not_positive(bad):
    with pytest.raises(ValueError, match=r"AlexNetCIFAR: width must be a positive number"):
        models.build('alexnet-cifar', width=bad)


def _output_shape(name, num_classes):
    model = models.build(name, num_classes=num_classes).eval()
    size = models.INPUT_SIZE[name]
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((2, 3, size, size),
                                                               dtype=np.float32))
    with minidl.no_grad():
        return model(x).shape


@pytest.mark.parametrize('name', CIFAR_32)
def test_cifar_models_output_shape(name):
    assert _output_shape(name, 7) == (2, 7)


@pytest.mark.slow
@pytest.mark.parametrize('name', IMAGENET_224)
def test_imagenet_models_output_shape(name):
    assert _output_shape(name, 1000) == (2, 1000)


def test_two_gpu_alexnet_uses_groups_in_conv2_conv4_conv5_only():
    groups = [m.groups for m in models.build('alexnet-2gpu').modules()
              if isinstance(m, minidl.nn.Conv2d)]
    assert groups == [1, 2, 1, 2, 2]


def test_alexnet_summary_shows_the_papers_feature_map_sizes():
    lines = []
    rows = minidl.summary(models.build('alexnet'), (1, 3, 224, 224), print_fn=lines.append)
    conv_and_pool = [r['output_shape'][2:] for r in rows if r['type'] in ('Conv2d', 'MaxPool2d')]
    assert conv_and_pool == [(55, 55), (27, 27), (27, 27), (13, 13), (13, 13), (13, 13),
                             (13, 13), (6, 6)]
    assert rows[0]['macs'] == 96 * 55 * 55 * 3 * 11 * 11
    assert 'total: 62,378,344 parameters' in lines[-1]


def test_summary_measures_what_layers_keep_for_backward():
    model = minidl.nn.Sequential(minidl.nn.Conv2d(3, 4, 3), minidl.nn.ReLU(),
                                 minidl.nn.MaxPool2d(2), minidl.nn.Dropout())
    rows = minidl.summary(model, (2, 3, 10, 10), print_fn=lambda s: None)
    conv, relu, pool, drop = (r['kept_bytes'] for r in rows)
    # its input x and the col matrix (C*KH*KW x N*OH*OW) kept for the weight gradient
    assert conv == 2 * 3 * 10 * 10 * 4 + (3 * 3 * 3) * (2 * 8 * 8) * 4
    assert relu == 2 * 4 * 8 * 8 * 4  # its input
    assert pool == 2 * 4 * 4 * 4 * 1  # the 1-byte argmax only: backward reads x's shape
    assert drop == 2 * 4 * 4 * 4 * (4 + 1)  # input + boolean mask


def test_summary_leaves_the_model_unchanged():
    model = minidl.nn.Sequential(minidl.nn.Linear(3, 3), minidl.nn.BatchNorm1d(3)).eval()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    minidl.summary(model, (4, 3), print_fn=lambda s: None)
    assert not model.training
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.slow
@pytest.mark.parametrize('name', ['alexnet', 'vgg16'])
def test_forward_and_backward_at_224_on_cpu(name):
    model = models.build(name)
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((2, 3, 224, 224),
                                                               dtype=np.float32))
    loss = minidl.functional.softmax_cross_entropy(model(x), np.array([1, 2]))
    loss.backward()
    assert np.isfinite(loss.item())
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
               for p in model.parameters())


def test_alexnet_cifar_takes_winograd_f4_by_default_and_can_choose(monkeypatch):
    def make(tile):  # channels 21, 65, 130, 87, 87
        model = models.build('alexnet-cifar', width=0.34,
                             **({} if tile == 4 else {'winograd': tile})).eval()
        assert model.winograd == tile
        return model
    results = winograd_tilings_and_gradients(make, monkeypatch)
    # F(4x4) (64 channels on both sides): conv3..5, forward and input gradient; F(2x2)
    # needs 128 on both sides, which none of these has
    assert [results[t][0] for t in (4, 2, 0)] == [[4] * 6, [], []]


@pytest.mark.parametrize('tile', [1, 3, True, '4', None])
def test_alexnet_cifar_refuses_other_winograd_tiles(tile):
    with pytest.raises(ValueError, match=r'AlexNetCIFAR: winograd must be 0 \(im2col\), 2 or 4'):
        models.build('alexnet-cifar', winograd=tile)
