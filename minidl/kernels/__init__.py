"""Kernels: the speed machinery, kept out of the teaching code.

The ops in ``minidl/functional`` say *what* is computed (forward and backward side by side,
each backward derived in its docstring); the functions here say *how fast*. Each kernel is
a plain function on arrays (no autograd) with a docstring giving the formula it computes,
and each is the fast twin of something readable: ``minidl.functional.reference`` computes
the same values from plain Tensor operations, and the tests hold the two equal.

One module per family:

=================  ===============================================================
``cpu``            the CPU runtime: worker threads (``parallel_for``), malloc reuse
``layout``         NCHW and channels-last (NHWC) memory behind one (N, C, H, W) shape
``elementwise``    ReLU, GELU and their gradients, contiguous copies, by all CPU threads
``erf``            erf / erfc (float64: Cephes; float32: a fitted tanh form), in blocks
``im2col``         sliding windows, im2col / col2im (NCHW and NHWC), the col budget
``winograd``       Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with many channels
``pooling``        max pooling (running max + argmax, scatter-add backward), average
``lrn``            local response normalisation, forward and backward
``batchnorm``      training-mode batch norm on channels-last inputs, in cache-sized blocks
``optim``          cache-blocked, threaded optimizer updates
=================  ===============================================================

The choice between the NumPy and the CuPy version of a kernel is made here, as Chainer's
``utils/conv.py`` does with ``im2col_cpu`` / ``im2col_gpu``: on NumPy arrays the work is
split among CPU threads (NumPy runs an elementwise loop on one core); on CuPy arrays one
whole-array call does it all. ``minidl/backend.py`` stays the only module that imports
CuPy.
"""
