"""Layers and models: ``import minidl.nn as nn`` (names as in ``torch.nn``)."""
from .. import functional
from . import init
from .layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, CrossEntropyLoss, Dropout,
                     Flatten, GELU, Identity, Linear, LocalResponseNorm, MaxPool2d, ReLU,
                     Sigmoid, Softmax, Tanh)
from .module import Module, Parameter, Sequential
from .summary import summary
from .syncbatchnorm import SyncBatchNorm
