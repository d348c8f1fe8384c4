"""Data for training: the CIFAR-10 and Fashion-MNIST readers (see docs/data.md).

    from minidl.data import CIFAR10, FashionMNIST

    train = CIFAR10(train=True, classes=('airplane', 'ship'))   # labels 0 and 1
    image, label = train[0]                                     # uint8 (3, 32, 32), int
"""
from .datasets import (CIFAR10, FashionMNIST, find_data_root, DatasetNotFoundError,
                       DatasetCorruptError)
from .loader import DataLoader
from . import transforms
