"""Differentiable operations (``import minidl.functional as F``), one family per file.

``reference`` holds the readable versions of the fast ops (conv2d, pooling, LRN, batch
norm, cross-entropy, linear), written with Tensor operations alone.
"""
import sys

from ..tensor import astype, install_operators, to
from .math import (add, sub, mul, div, neg, pow, exp, log, sqrt, absolute, matmul, linear, sum,
                   mean, max, argmax)
from .shape import (reshape, transpose, flatten, contiguous, is_contiguous, broadcast_to,
                    sum_to, getitem, concat, cat, pad)
from .activation import relu, gelu, tanh, sigmoid, softmax, log_softmax
from .conv import conv2d
from .pooling import max_pool2d, avg_pool2d
from .normalization import local_response_norm, batch_norm
from .dropout import dropout
from .loss import softmax_cross_entropy, cross_entropy, mse_loss

install_operators(sys.modules[__name__])
from . import reference  # noqa: E402  (the readable versions, built from the ops above)
