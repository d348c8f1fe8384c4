"""nn.init.dirac_: torch.nn.init.dirac_'s values, the identity it makes of a convolution, and
its errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from helpers import requires_torch, torch

SHAPES = [  # (shape, groups)
    ((4, 4, 3), 1), ((3, 5, 3, 3), 1), ((6, 2, 5, 5), 1), ((6, 4, 3, 3), 2),
    ((6, 1, 3, 3), 3), ((4, 3, 2, 4), 1), ((8, 2, 3, 1), 4), ((2, 2, 3, 3, 3), 1),
    ((6, 3, 2, 3, 4), 3), ((5, 5, 1, 1), 1), ((4, 6, 4), 2),
]


@requires_torch
@pytest.mark.parametrize('shape, groups', SHAPES, ids=[f"{s}-g{g}" for s, g in SHAPES])
def test_dirac_equals_torch(shape, groups):
    w = minidl.Tensor(np.random.default_rng(0).standard_normal(shape))  # overwritten
    out = nn.init.dirac_(w, groups)
    assert out is w
    expected = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups)
    np.testing.assert_array_equal(w.numpy(), expected.numpy())


def test_dirac_keeps_dtype_and_parameter():
    conv = nn.Conv2d(3, 5, 3)
    nn.init.dirac_(conv.weight)
    assert conv.weight.dtype == np.float32 and conv.weight.requires_grad
    assert conv.weight.numpy().sum() == 3  # min(out, in) ones


@pytest.mark.parametrize('out_channels, in_channels, kernel, groups',
                         [(5, 3, 3, 1), (3, 3, 5, 1), (4, 4, (3, 5), 2), (6, 3, 3, 3)])
def test_dirac_conv_same_is_identity(out_channels, in_channels, kernel, groups):
    """With padding='same' the first min(out/groups, in/groups) outputs of each group copy
    that group's inputs; the other outputs are 0."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, padding='same', groups=groups,
                     bias=False).double()
    nn.init.dirac_(conv.weight, groups)
    x = minidl.Tensor(np.random.default_rng(1).standard_normal((2, in_channels, 7, 6)))
    y = F.conv2d(x, conv.weight, padding='same', groups=groups).numpy()
    assert y.shape == (2, out_channels, 7, 6)
    m, i = out_channels // groups, in_channels // groups
    for g in range(groups):
        for d in range(m):
            expected = x.numpy()[:, g * i + d] if d < i else 0
            np.testing.assert_array_equal(y[:, g * m + d], expected)
    assert np.array_equal(conv(x).numpy(), y)


@pytest.mark.parametrize('shape', [(3,), (3, 3), (2, 2, 2, 2, 2, 2)])
def test_dirac_bad_dims(shape):
    with pytest.raises(ValueError, match=r"dirac_: expected a 3-, 4- or 5-d tensor.*"
                                         + str(shape).replace('(', r'\(').replace(')', r'\)')):
        nn.init.dirac_(minidl.Tensor(np.zeros(shape)))


def test_dirac_groups_must_divide_out_channels():
    w = minidl.Tensor(np.ones((5, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"dirac_: dim 0 \(out channels\) must be divisible "
                                         r"by groups 2, got shape \(5, 2, 3, 3\)"):
        nn.init.dirac_(w, groups=2)
    assert (w.numpy() == 1).all()  # unchanged
    with pytest.raises(ValueError, match="dirac_: groups must be an int >= 1, got 0"):
        nn.init.dirac_(w, groups=0)
    with pytest.raises(TypeError, match="dirac_: groups must be an int"):
        nn.init.dirac_(w, groups=1.0)


@requires_torch
def test_dirac_errors_where_torch_errors():
    for shape, groups in [((3, 3), 1), ((5, 2, 3, 3), 2)]:
        with pytest.raises(ValueError):
            torch.nn.init.dirac_(torch.empty(shape), groups)
        with pytest.raises(ValueError):
            nn.init.dirac_(minidl.Tensor(np.zeros(shape)), groups)
