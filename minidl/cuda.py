"""GPU helpers: ``minidl.cuda.is_available()``."""
from . import backend


def is_available():
    """True when CuPy is installed and a CUDA GPU is visible."""
    return backend.gpu_available()


def device_count():
    if not is_available():
        return 0
    return backend._cupy.cuda.runtime.getDeviceCount()


def synchronize():
    """Wait for the GPU to finish queued work (for timing)."""
    if is_available():
        backend._cupy.cuda.Device().synchronize()
