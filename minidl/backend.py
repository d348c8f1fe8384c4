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


# ----------------------------------------------------------------------------- NCCL
# The all-reduce between GPUs of minidl.distributed (CuPy's bindings of NVIDIA's NCCL).
# Written to the CuPy API; it runs only on machines with GPUs (see docs/distributed.md).
def select_gpu(index):
    """Make GPU ``index`` (modulo the number of GPUs) the current device, if there is one."""
    if gpu_available():
        _cupy.cuda.Device(index % _cupy.cuda.runtime.getDeviceCount()).use()


def nccl_unique_id():
    from cupy.cuda import nccl
    return nccl.get_unique_id()


def nccl_communicator(world, unique_id, rank):
    from cupy.cuda import nccl
    return nccl.NcclCommunicator(world, unique_id, rank)


def _nccl_dtype(array):
    from cupy.cuda import nccl
    types = {'float16': nccl.NCCL_FLOAT16, 'float32': nccl.NCCL_FLOAT32,
             'float64': nccl.NCCL_FLOAT64, 'int32': nccl.NCCL_INT32, 'int64': nccl.NCCL_INT64}
    if array.dtype.name not in types:
        raise TypeError(f"NCCL: no reduction for dtype {array.dtype}")
    return types[array.dtype.name]


def nccl_allreduce_sum_(communicator, array):
    """array (contiguous, on the GPU) <- its sum over the ranks, queued on the current stream;
    returns the stream (``gpu_wait`` waits for it)."""
    from cupy.cuda import nccl
    stream = _cupy.cuda.get_current_stream()
    communicator.allReduce(array.data.ptr, array.data.ptr, array.size, _nccl_dtype(array),
                           nccl.NCCL_SUM, stream.ptr)
    return stream


def nccl_broadcast_(communicator, array, root=0):
    """array (contiguous, on the GPU) <- rank ``root``'s, queued on the current stream."""
    stream = _cupy.cuda.get_current_stream()
    communicator.bcast(array.data.ptr, array.size, _nccl_dtype(array), root, stream.ptr)
    return stream


def gpu_done(stream):
    """True once everything queued on ``stream`` has run."""
    return stream.done
