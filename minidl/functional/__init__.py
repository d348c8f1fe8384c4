"""Differentiable operations (``import minidl.functional as F``), one family per file."""
from .math import (add, sub, mul, div, neg, pow, exp, log, sqrt, matmul, linear, sum, mean,
                   max, argmax, reshape, transpose, flatten, broadcast_to, sum_to, getitem,
                   concat, cat, pad, astype, to, install_tensor_methods)
from .activation import relu, tanh, sigmoid, softmax, log_softmax
from .conv import conv2d
from .pooling import max_pool2d, avg_pool2d
from .normalization import local_response_norm, batch_norm
from .dropout import dropout
from .loss import softmax_cross_entropy, cross_entropy, mse_loss

install_tensor_methods()
