"""The model zoo, built only from ``minidl.nn``: ``models.build(name)``, ``models.names()``."""
from functools import partial

from minidl.utils import ArgumentTypeError, _is_int

from .alexnet import AlexNet, AlexNetCIFAR, AlexNetCIFAR2Class
from .vgg import VGG
from .fast_cifar import FastCIFAR

_IMAGENET, _CIFAR = 1000, 10

# name: (constructor, default number of classes)
_REGISTRY = {
    'alexnet': (AlexNet, _IMAGENET),
    'alexnet-2gpu': (partial(AlexNet, two_gpu=True), _IMAGENET),
    'alexnet-cifar': (AlexNetCIFAR, _CIFAR),
    'alexnet-cifar-2class': (AlexNetCIFAR2Class, 2),
    'vgg-a': (partial(VGG, 'A'), _IMAGENET),
    'vgg-a-lrn': (partial(VGG, 'A', lrn=True), _IMAGENET),
    'vgg-b': (partial(VGG, 'B'), _IMAGENET),
    'vgg-c': (partial(VGG, 'C'), _IMAGENET),
    'vgg-d': (partial(VGG, 'D'), _IMAGENET),
    'vgg-e': (partial(VGG, 'E'), _IMAGENET),
    'vgg11': (partial(VGG, 'A'), _IMAGENET),
    'vgg13': (partial(VGG, 'B'), _IMAGENET),
    'vgg16': (partial(VGG, 'D'), _IMAGENET),
    'vgg19': (partial(VGG, 'E'), _IMAGENET),
    'vgg11-cifar': (partial(VGG, 'A', cifar=True), _CIFAR),
    'vgg16-cifar': (partial(VGG, 'D', cifar=True), _CIFAR),
    'vgg11-bn-cifar': (partial(VGG, 'A', cifar=True, batch_norm=True), _CIFAR),
    'vgg16-bn-cifar': (partial(VGG, 'D', cifar=True, batch_norm=True), _CIFAR),
    'vgg-fast-cifar': (FastCIFAR, _CIFAR),
}

INPUT_SIZE = {name: 32 if ('cifar' in name) else 224 for name in _REGISTRY}


def names():
    """Every model name ``build`` accepts."""
    return list(_REGISTRY)


def build(name, num_classes=None, **kwargs):
    """A new model by name, e.g. ``build('vgg16-bn-cifar', num_classes=10)``.

    ``num_classes=None`` gives the model's own head (1000 for ImageNet models, 10 for the
    CIFAR ones, 2 for alexnet-cifar-2class); anything else must be a positive int. Keyword
    arguments go to the model's constructor, except those the name fixes (``two_gpu`` of
    'alexnet-2gpu', ``cifar`` and ``batch_norm`` of 'vgg11-bn-cifar', ...)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"models.build: name must be a model name (str), got {name!r}")
    if name not in _REGISTRY:
        raise ValueError(f"models.build: unknown model {name!r}; known models: "
                         f"{', '.join(_REGISTRY)}")
    constructor, default_classes = _REGISTRY[name]
    fixed = set(getattr(constructor, 'keywords', {})) & set(kwargs)
    if fixed or (getattr(constructor, 'args', ()) and 'config' in kwargs):
        given = sorted(fixed) or ['config']
        raise TypeError(f"models.build: {name!r} fixes {', '.join(given)}; choose another model "
                        f"name rather than pass {', '.join(f'{k}={kwargs[k]!r}' for k in given)}")
    if num_classes is not None and not (_is_int(num_classes) and num_classes >= 1):
        error = ValueError if _is_int(num_classes) else ArgumentTypeError
        raise error(f"models.build: num_classes must be a positive integer, got {num_classes!r}")
    return constructor(num_classes=int(num_classes or default_classes), **kwargs)
