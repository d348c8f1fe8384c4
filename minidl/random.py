"""Random numbers for minidl (dropout masks, initialisation, shuffling), one seed for all.

``manual_seed(s)`` reseeds the CPU generator (NumPy's PCG64) and, when CuPy is present,
the GPU one, so a run is reproducible on the device it ran on.
"""
import numpy as np

from . import backend

_generators = {'cpu': np.random.default_rng(), 'cuda': None}
_seed = [None]


def manual_seed(seed):
    """Seed every generator minidl uses; returns the seed. As in PyTorch, ``seed`` is read
    with ``int()`` and a negative one counts from 2**64 (-1 is 2**64 - 1)."""
    try:
        seed = int(seed)
    except (TypeError, ValueError, OverflowError) as e:
        raise type(e)(f"manual_seed: the seed must be an int, got {seed!r:.40} ({e})") from None
    if seed < 0:  # NumPy takes non-negative seeds only
        if seed < -2 ** 63:
            raise ValueError(f"manual_seed: a negative seed must be at least -2**63, got {seed}")
        seed += 2 ** 64
    _seed[0] = seed
    _generators['cpu'] = np.random.default_rng(seed)
    _generators['cuda'] = None  # recreated from the seed on first use
    return seed


def generator(xp=np):
    """The generator for array module ``xp`` (numpy or cupy)."""
    if xp is np:
        return _generators['cpu']
    if _generators['cuda'] is None:
        seed = _seed[0] if _seed[0] is not None else int(_generators['cpu'].integers(2 ** 31))
        _generators['cuda'] = xp.random.default_rng(seed)
    return _generators['cuda']


def get_rng_state():
    """The CPU generator's state (a dict of plain numbers), e.g. for a checkpoint."""
    return _generators['cpu'].bit_generator.state


def set_rng_state(state):
    """Restore the CPU generator from what ``get_rng_state`` returned."""
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, KeyError) as e:
        raise type(e)(f"set_rng_state: expected the dict get_rng_state() returned (NumPy "
                      f"{type(rng.bit_generator).__name__} state), got "
                      f"{type(state).__name__} ({e})") from None
    _generators['cpu'] = rng


def rand(shape, dtype=np.float32, device='cpu'):
    """Uniform samples in [0, 1)."""
    xp = backend.array_module_for(device)
    native = np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.float64
    return generator(xp).random(shape, dtype=native).astype(dtype, copy=False)


def randn(shape, dtype=np.float32, device='cpu'):
    """Standard normal samples."""
    xp = backend.array_module_for(device)
    native = np.dtype(dtype) if np.dtype(dtype) in (np.float32, np.float64) else np.float64
    return generator(xp).standard_normal(shape, dtype=native).astype(dtype, copy=False)
