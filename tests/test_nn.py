"""minidl.nn: Module registration, modes, devices/dtypes, state dicts, layers, init, hooks."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from helpers import assert_parity, rand, requires_torch, torch


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


def test_parameters_are_registered_in_assignment_order():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ['scale', 'fc1.weight', 'fc1.bias',
                                                     'fc2.weight']
    assert [type(c).__name__ for c in m.children()] == ['Linear', 'ReLU', 'Linear']
    assert all(p.requires_grad and p.dtype == np.float32 for p in m.parameters())


def test_shared_parameters_are_listed_once():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    m.append(m[0])
    assert len(list(m.parameters())) == 2


def test_parameter_shapes_follow_pytorch():
    conv = nn.Conv2d(6, 8, (3, 5), groups=2)
    assert conv.weight.shape == (8, 3, 3, 5) and conv.bias.shape == (8,)
    assert nn.Linear(5, 7).weight.shape == (7, 5)
    assert nn.Conv2d(3, 4, 3, bias=False).bias is None


def test_default_init_is_uniform_in_one_over_sqrt_fan_in():
    minidl.manual_seed(0)
    w = nn.Conv2d(16, 32, 3).weight.numpy()
    bound = 1 / np.sqrt(16 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_manual_seed_makes_initialisation_reproducible():
    minidl.manual_seed(1)
    a = nn.Linear(3, 3).weight.numpy().copy()
    minidl.manual_seed(1)
    assert np.array_equal(a, nn.Linear(3, 3).weight.numpy())


def test_train_eval_switch_every_submodule():
    m = nn.Sequential(nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(3)))
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_dropout_layer_is_identity_in_eval_mode():
    x = minidl.tensor(np.ones((4, 4)))
    d = nn.Dropout(0.5).eval()
    assert np.array_equal(d(x).numpy(), x.numpy())


def test_zero_grad_and_backward_through_a_module():
    m = TwoLayer()
    m(minidl.tensor(np.ones((5, 4), np.float32))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_converts_parameters_and_buffers():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert all(b.dtype == np.float64 for b in m.buffers())
    assert m(minidl.Tensor(np.ones((3, 2)))).dtype == np.float64
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_state_dict_names_and_round_trip():
    a, b = TwoLayer(), TwoLayer()
    sd = a.state_dict()
    assert list(sd) == ['scale', 'fc1.weight', 'fc1.bias', 'fc2.weight']
    b.load_state_dict(sd)
    x = minidl.tensor(np.random.default_rng(0).standard_normal((3, 4), np.float32))
    assert np.array_equal(a(x).numpy(), b(x).numpy())
    b.fc1.weight.data[0, 0] = 123.0  # loading copied, did not alias
    assert a.fc1.weight.data[0, 0] != 123.0


def test_state_dict_includes_batch_norm_buffers():
    assert list(nn.BatchNorm2d(3).state_dict()) == ['weight', 'bias', 'running_mean',
                                                    'running_var']


@pytest.mark.parametrize('change, pattern', [
    (lambda sd: sd.pop('fc1.bias'), r"missing keys: \['fc1.bias'\]"),
    (lambda sd: sd.update(extra=np.zeros(1)), r"unexpected keys: \['extra'\]"),
    (lambda sd: sd.update({'fc1.weight': np.zeros((4, 3))}),
     r"fc1.weight: checkpoint shape \(4, 3\) != model shape \(3, 4\)"),
])
def test_load_state_dict_errors_change_nothing(change, pattern):
    m = TwoLayer()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    sd = {k: np.zeros_like(v) for k, v in m.state_dict().items()}
    change(sd)
    with pytest.raises(ValueError, match=pattern):
        m.load_state_dict(sd)
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())


def test_load_state_dict_non_strict_reports_keys():
    m = TwoLayer()
    sd = m.state_dict()
    del sd['scale']
    sd['other'] = np.zeros(2)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ['scale'] and result.unexpected_keys == ['other']


def test_forward_hook_sees_output_and_can_be_removed():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    shapes = []
    handle = m[0].register_forward_hook(lambda mod, inp, out: shapes.append(out.shape))
    m(minidl.tensor(np.ones((4, 2), np.float32)))
    handle.remove()
    m(minidl.tensor(np.ones((4, 2), np.float32)))
    assert shapes == [(4, 3)]


def test_sequential_indexing_and_ordered_dict():
    m = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU()))
    assert isinstance(m[0], nn.Conv2d) and len(m) == 2 and isinstance(m[1:][0], nn.ReLU)
    assert list(m.state_dict()) == ['conv.weight', 'conv.bias']
    with pytest.raises(TypeError, match="Sequential: 0 is a int"):
        nn.Sequential(3)


def test_layer_errors_name_the_layer():
    with pytest.raises(ValueError, match="Conv2d: in_channels 3 .* groups 2"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input, got shape \(2, 3\)"):
        nn.BatchNorm2d(3)(minidl.tensor(np.ones((2, 3))))
    with pytest.raises(ValueError, match="Dropout: p"):
        nn.Dropout(2.0)


def test_repr_reads_like_pytorch():
    text = repr(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()))
    assert '(0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))' in text


@requires_torch
def test_conv2d_layer_with_padding_same_matches_torch_batched_and_unbatched(device):
    ours = nn.Conv2d(2, 3, (2, 3), padding='same', dilation=(1, 2)).double().to(device)
    theirs = torch.nn.Conv2d(2, 3, (2, 3), padding='same', dilation=(1, 2)).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
        theirs.bias.copy_(torch.tensor(ours.bias.numpy()))
    for shape in ((2, 2, 5, 6), (2, 5, 6)):
        x = rand(*shape, requires_grad=False, device=device)
        assert_parity(ours(x), theirs(torch.tensor(x.numpy())))
    assert "padding=same" in repr(ours)


def test_conv2d_layer_rejects_bad_padding_at_construction():
    with pytest.raises(ValueError, match="Conv2d: padding must be 'same', 'valid'.*'full'"):
        nn.Conv2d(1, 1, 3, padding='full')
    with pytest.raises(ValueError, match=r"Conv2d: padding='same' needs stride 1.*\(2, 2\)"):
        nn.Conv2d(1, 1, 3, stride=2, padding='same')


@requires_torch
@pytest.mark.parametrize('shape', [(2, 3, 7, 6), (3, 7, 6)], ids=['batched', 'unbatched'])
def test_pooling_layers_with_the_new_options_match_torch(shape, device):
    x = rand(*shape, requires_grad=False, device=device)
    tx = torch.tensor(x.numpy())
    y, i = nn.MaxPool2d(3, 2, 1, dilation=2, return_indices=True, ceil_mode=True)(x)
    ty, ti = torch.nn.MaxPool2d(3, 2, 1, dilation=2, return_indices=True, ceil_mode=True)(tx)
    assert_parity(y, ty)
    np.testing.assert_array_equal(i.numpy(), ti.numpy())
    options = dict(ceil_mode=True, count_include_pad=False)
    assert_parity(nn.AvgPool2d(3, 2, 1, **options)(x), torch.nn.AvgPool2d(3, 2, 1, **options)(tx))
    assert_parity(nn.AvgPool2d(2, divisor_override=3)(x),
                  torch.nn.AvgPool2d(2, divisor_override=3)(tx))


def test_local_response_norm_layer_reads_a_3d_input_as_n_c_l():
    x = rand(2, 5, 3, requires_grad=False)
    lrn = nn.LocalResponseNorm(3, alpha=0.5)
    np.testing.assert_array_equal(lrn(x).numpy(), lrn(x.reshape(2, 5, 3, 1)).numpy()[..., 0])


def test_pooling_layers_reject_bad_options_at_construction():
    with pytest.raises(ValueError, match=r"MaxPool2d: dilation must be positive, got -1"):
        nn.MaxPool2d(2, dilation=-1)
    with pytest.raises(ValueError, match=r"MaxPool2d: return_indices must be True or False"):
        nn.MaxPool2d(2, return_indices=None)
    with pytest.raises(ValueError, match=r"AvgPool2d: divisor_override must be a nonzero int"):
        nn.AvgPool2d(2, divisor_override=0)


def test_init_functions_statistics():
    minidl.manual_seed(0)
    w = nn.Parameter(np.zeros((256, 128, 3, 3), np.float32))
    nn.init.normal_(w, 0.0, 0.01)
    assert abs(w.numpy().std() - 0.01) < 2e-4
    nn.init.kaiming_normal_(w, nonlinearity='relu')
    assert abs(w.numpy().std() - np.sqrt(2 / (128 * 9))) < 1e-3
    nn.init.xavier_uniform_(w)
    bound = np.sqrt(6 / (128 * 9 + 256 * 9))
    assert np.abs(w.numpy()).max() <= bound
    nn.init.constant_(w, 1.0)
    assert (w.numpy() == 1).all()
    nn.init.zeros_(w)
    assert (w.numpy() == 0).all()


@requires_torch
def test_batch_norm_layer_matches_torch_over_training_steps():
    ours = nn.BatchNorm2d(3).double()
    theirs = torch.nn.BatchNorm2d(3).double()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
        np.testing.assert_allclose(ours(minidl.Tensor(x)).numpy(),
                                   theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours(minidl.Tensor(x)).numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- CrossEntropyLoss
CE_WEIGHT = np.array([0.5, 2.0, 1.0, 0.25])
CE_TARGET = np.array([[0, 3, -100], [2, 1, 1]])  # (N, d1) for logits (N, C, d1)


def test_cross_entropy_loss_takes_torch_options_in_torch_order(device):
    loss = nn.CrossEntropyLoss(CE_WEIGHT, -100, 'none', 0.1).to(device)
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 4, 3)), device=device)
    expected = minidl.functional.cross_entropy(
        x, minidl.backend.to_device(CE_TARGET, device),
        weight=minidl.backend.to_device(CE_WEIGHT, device), reduction='none',
        label_smoothing=0.1)
    out = loss(x, minidl.backend.to_device(CE_TARGET, device))
    assert out.shape == (2, 3) and np.array_equal(out.numpy(), expected.numpy())


def test_cross_entropy_loss_weight_is_a_buffer_in_the_state_dict():
    loss = nn.CrossEntropyLoss(weight=CE_WEIGHT)
    assert list(loss.state_dict()) == ['weight']
    assert loss.double().weight.dtype == np.float64
    assert list(nn.CrossEntropyLoss().state_dict()) == []


@requires_torch
def test_cross_entropy_loss_matches_torch_with_every_option():
    x, target = np.random.default_rng(1).standard_normal((2, 4, 3)), CE_TARGET % 4
    ours = nn.CrossEntropyLoss(CE_WEIGHT, ignore_index=1, label_smoothing=0.2)(
        minidl.tensor(x), target)
    theirs = torch.nn.CrossEntropyLoss(torch.tensor(CE_WEIGHT), ignore_index=1,
                                       label_smoothing=0.2)(torch.tensor(x),
                                                            torch.tensor(target))
    assert abs(ours.item() - theirs.item()) < 1e-12


@pytest.mark.parametrize('kwargs, error, pattern', [
    (dict(weight=0.5), ValueError, r"weight must be None or a 1-d floating-point .*0.5"),
    (dict(weight=np.ones((2, 2))), ValueError, r"weight must be None or a 1-d"),
    (dict(ignore_index=1.5), TypeError, r"ignore_index must be an int, got 1.5"),
    (dict(label_smoothing=-0.1), ValueError, r"label_smoothing must be a number in \[0, 1\]"),
    (dict(reduction='avg'), ValueError, r"reduction must be one of .*'avg'"),
])
def test_cross_entropy_loss_bad_options_name_the_layer(kwargs, error, pattern):
    with pytest.raises(error, match='CrossEntropyLoss: ' + pattern):
        nn.CrossEntropyLoss(**kwargs)
