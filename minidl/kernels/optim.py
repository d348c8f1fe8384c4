"""Optimizer updates one cache-sized block at a time, the blocks shared among CPU threads.

An update (SGD, Adam) is a few elementwise passes over the parameter p, its gradient g and
the optimizer state. Whole-array passes each stream every array from memory again; done
one block at a time (``BLOCK`` elements, so that a block of every array fits in the L2
cache), each array is read and written once. The arithmetic per element is unchanged, so
is the result: ``blockwise(update, p, g, m)`` equals ``update(p, g, m)``.
"""
from .. import backend
from . import cpu

BLOCK = 1 << 15  # elements per block: one block of every array of an update fits in L2 cache


def blockwise(update, *arrays, **options):
    """Run ``update(*parts, **options)`` in place on matching blocks of equally shaped arrays.

    Arrays that ``update`` writes must be C-contiguous (the state is; a parameter that is
    not, or a CuPy array, is updated whole, in one call).
    """
    if backend.on_gpu(arrays[0]) or not all(a.flags.c_contiguous for a in arrays):
        update(*arrays, **options)
        return
    flat = [a.reshape(-1) for a in arrays]

    def part(start, stop):
        for lo in range(start, stop, BLOCK):
            update(*(f[lo:min(lo + BLOCK, stop)] for f in flat), **options)
    cpu.parallel_for(part, flat[0].size)
