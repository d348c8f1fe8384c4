"""Where things live: the teaching code holds no speed machinery, and only backend.py knows
CuPy. (The readable/fast split of the code base, as a specification.)"""
import os
import re

import minidl
import minidl.functional as F
from minidl.functional import reference

PACKAGE = os.path.dirname(minidl.__file__)


def _sources(*folders):
    for folder in folders:
        for root, _, files in os.walk(os.path.join(PACKAGE, folder)):
            for name in files:
                if name.endswith('.py'):
                    path = os.path.join(root, name)
                    with open(path, encoding='utf-8') as f:
                        yield os.path.relpath(path, PACKAGE), f.read()


def test_ops_and_optimizers_hold_no_threading_code():
    found = [path for path, text in _sources('functional', 'optim')
             if re.search(r'parallel_|threading', text)]
    assert not found, f"threading code outside minidl/kernels: {found}"


def test_only_backend_imports_cupy():
    found = [path for path, text in _sources('.')
             if re.search(r'^\s*(import|from)\s+cupy', text, re.M)]
    assert found == ['backend.py']


def test_every_kernel_is_documented():
    from minidl.kernels import (batchnorm, cpu, elementwise, erf, im2col, layout, lrn, optim,
                                pooling, winograd)
    for module in (batchnorm, cpu, elementwise, erf, im2col, layout, lrn, optim, pooling,
                   winograd):
        assert module.__doc__, module.__name__
        for name, obj in vars(module).items():
            if callable(obj) and not name.startswith('_') and \
                    getattr(obj, '__module__', None) == module.__name__:
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"


def test_the_reference_has_the_seven_readable_ops_under_the_fast_names():
    names = ['conv2d', 'max_pool2d', 'avg_pool2d', 'local_response_norm', 'batch_norm',
             'softmax_cross_entropy', 'linear']
    for name in names:
        assert callable(getattr(reference, name)) and callable(getattr(F, name))
