"""minidl: a deep-learning framework written from scratch on NumPy (CPU) and CuPy (GPU).

    import minidl
    import minidl.functional as F

    x = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    y = F.tanh(x @ x.T).sum()
    y.backward()
    x.grad
"""
import os as _os
import sys as _sys

# OpenBLAS's threads spin for ~0.1 s after each matrix product, taking the core that
# minidl's own worker thread needs for the copies around it (kernels/cpu.py). Read by
# OpenBLAS as it loads when minidl is imported first; re-applied below when NumPy was
# imported first. Set the variable yourself to choose another value.
_os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '4')
_numpy_loaded_first = 'numpy' in _sys.modules

from . import backend, cuda
from .kernels import cpu
_sys.modules[__name__ + '.cpu'] = cpu  # ``import minidl.cpu`` still works (it moved)
cpu.OPENBLAS_TIMEOUT_APPLIED = (cpu.apply_openblas_thread_timeout() if _numpy_loaded_first
                                else 'at load')
from .kernels.cpu import set_num_threads, get_num_threads
from .kernels.winograd import tile as winograd_tile
from .kernels.layout import CHANNELS_LAST as channels_last, CONTIGUOUS as contiguous_format
from .tensor import (Tensor, Function, tensor, as_tensor, no_grad, enable_grad,
                     set_grad_enabled, is_grad_enabled, grad)
from . import functional
from . import nn
from . import optim
from .nn import summary
from .random import manual_seed
from .gradcheck import gradcheck, gradgradcheck, GradcheckError
from .serialization import save, load

__version__ = '0.1.0'
