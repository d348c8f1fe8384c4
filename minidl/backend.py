"""Which array module holds an array (NumPy or CuPy), device names, and moving arrays.

Every op is written once against ``xp = get_array_module(array)``; this file is the only
place that knows CuPy exists.
"""
import numpy as np

try:  # CuPy is optional: minidl is a NumPy framework that can also run on one GPU.
    import cupy as _cupy
    import cupyx as _cupyx
except Exception:  # ImportError, or a CuPy that cannot find its CUDA libraries
    _cupy = None
    _cupyx = None

DEVICES = ('cpu', 'cuda')


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def get_array_module(array):
    """``cupy`` for a CuPy array, else ``numpy``."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def on_gpu(array):
    """True for a CuPy array: where the kernels (minidl/kernels) pick their GPU version."""
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def is_array(obj):
    return isinstance(obj, np.ndarray) or (_cupy is not None and isinstance(obj, _cupy.ndarray))


def device_of(array):
    """'cuda' for a CuPy array, 'cpu' otherwise."""
    return 'cuda' if get_array_module(array) is not np else 'cpu'


def check_device(device):
    """Normalise 'cuda:0' to 'cuda' and refuse unknown names or a missing GPU."""
    name = str(device).split(':')[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if name == 'cuda' and not gpu_available():
        raise RuntimeError("device 'cuda' requested but CuPy with a CUDA GPU is not available "
                           "(pip install 'minidl[gpu]' on a machine with an NVIDIA GPU)")
    return name


def array_module_for(device):
    return _cupy if check_device(device) == 'cuda' else np


def to_device(array, device):
    """The array on ``device`` ('cpu' or 'cuda'); the same object when already there."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == 'cpu':
        return _cupy.asnumpy(array)
    return _cupy.asarray(array)


def to_numpy(array):
    return array if get_array_module(array) is np else _cupy.asnumpy(array)


def scatter_add(target, index, values):
    """target[index] += values, with repeated indices accumulating (unbuffered)."""
    if get_array_module(target) is np:
        np.add.at(target, index, values)
    else:
        _cupyx.scatter_add(target, index, values)


def as_strided(array, shape, strides):
    """A strided view (no copy): the basis of im2col and pooling windows."""
    if get_array_module(array) is np:
        return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=False)
    return _cupy.lib.stride_tricks.as_strided(array, shape, strides)
