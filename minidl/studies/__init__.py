"""The papers' and the blog's claims as runnable studies: ``minidl study NAME``.

    from minidl import studies
    studies.names()                                  # what there is
    result = studies.run('relu-vs-tanh', quick=True, out='studies/relu-vs-tanh')

Each study trains small nets on CIFAR-10 (subsets, a few minutes on a laptop CPU; seconds
with ``quick``), writes ``result.json`` (measured numbers beside the paper's, settings,
time) and pictures into ``out``, and returns a verdict that says where ours agrees with the
paper and where not. The studies: ``alexnet.py`` (the AlexNet paper), ``vgg.py`` (the VGG
paper), ``blog.py`` (the blog's lessons); the shared machinery is ``base.py``.
"""
from .base import REGISTRY, run
from . import alexnet, blog, vgg  # noqa: F401  (registers the studies)


def names():
    """The registered studies' names, sorted."""
    return sorted(REGISTRY)
