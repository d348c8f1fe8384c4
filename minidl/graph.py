"""See the graph: ``minidl.graph.to_dot(loss)`` is the computational graph that produced a
tensor, as Graphviz DOT text (no dependency), the first thing a student wants to look at.

Boxes are the recorded Functions, with what each keeps for backward beyond its inputs (a
max-pool's argmax, a dropout mask, a conv's col matrix); ellipses are tensors with shape
and dtype: the leaves (parameters by name when ``params`` is given, inputs otherwise) and
the outputs of the Functions. Arrows run the way forward ran; backward walks them back.

    dot = minidl.graph.to_dot(loss, params=dict(model.named_parameters()))
    minidl.graph.write(dot, 'step.svg')     # rendered if Graphviz's ``dot`` is installed
"""
import os
import shutil
import subprocess

from . import backend
from .files import atomic_write, fspath
from .tensor import Tensor


def _describe(shape, dtype):
    return f"{tuple(shape)} {dtype}"


def _kept(fn):
    """What ``fn`` keeps for backward besides its inputs: 'name (shape) dtype, bytes'."""
    items = []
    for name, value in sorted(vars(fn).items()):
        if backend.is_array(value) and name not in ('inputs', 'outputs'):
            items.append(f"{name} {_describe(value.shape, value.dtype)}, "
                         f"{_bytes(value.nbytes)}")
    return items


def _bytes(n):
    for unit in ('B', 'KB', 'MB'):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == 'B' else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _quote(text):
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"'


def functions(output):
    """Every Function recorded on the way to ``output``, each once, outputs first."""
    _check_tensor('functions', output)
    order, seen = [], set()
    stack = [output.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        if getattr(fn, 'inputs', None) is None:
            raise ValueError("to_dot: the graph was freed by backward; draw it before "
                             "calling backward, or pass retain_graph=True")
        seen.add(id(fn))
        order.append(fn)
        stack.extend(x.grad_fn for x in fn.inputs)
    return order


def _check_tensor(who, output):
    if not isinstance(output, Tensor):
        raise TypeError(f"{who}: expected a Tensor, got {type(output).__name__}")


def to_dot(output, params=None, title=None):
    """The graph that produced ``output`` (a Tensor) as DOT text.

    ``params``: an optional {name: Tensor} (``dict(model.named_parameters())``, or the
    (name, Tensor) pairs ``model.named_parameters()`` yields) that names the leaves that
    are parameters. Raises ValueError after backward freed the graph.
    """
    _check_tensor('to_dot', output)
    try:
        params = dict(params or {})
    except (TypeError, ValueError):
        raise TypeError(f"to_dot: params must be a dict {{name: Tensor}} or (name, Tensor) "
                        f"pairs, got {type(params).__name__}") from None
    if output.grad_fn is None:
        raise ValueError(f"to_dot: the tensor {_describe(output.shape, output.dtype)} was not "
                         f"computed by recorded Functions (a leaf, or made under no_grad)")
    names = {id(p): n for n, p in params.items()}
    lines = ['digraph minidl {', '  rankdir=TB;', '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f'  label={_quote(str(title))}; labelloc=t;')
    leaves = {}
    for fn in functions(output):
        label = '\n'.join([fn.name] + [f"keeps {k}" for k in _kept(fn)])
        lines.append(f'  f{id(fn)} [shape=box, style=filled, fillcolor="#dde8f6", '
                     f'label={_quote(label)}];')
        for i, (shape, dtype) in enumerate(fn.output_meta):
            lines.append(f'  t{id(fn)}_{i} [shape=ellipse, label='
                         f'{_quote(_describe(shape, dtype))}];')
            lines.append(f'  f{id(fn)} -> t{id(fn)}_{i};')
        for x in fn.inputs:
            if x.grad_fn is not None:
                source = f't{id(x.grad_fn)}_{x._output_index}'
            else:
                source = f'l{id(x)}'
                leaves[id(x)] = x
            lines.append(f'  {source} -> f{id(fn)};')
    for key, x in leaves.items():
        name = names.get(key, 'parameter' if x.requires_grad else 'input')
        color = '#f6e7c1' if key in names else '#ffffff'
        lines.append(f'  l{key} [shape=ellipse, style=filled, fillcolor="{color}", '
                     f'label={_quote(name + chr(10) + _describe(x.shape, x.dtype))}];')
    lines.append('}')
    return '\n'.join(lines) + '\n'


def write(dot, path):
    """Write ``dot`` to ``path``: rendered by Graphviz when ``path`` ends in .svg, .png or
    .pdf and ``dot`` is installed, else as DOT text to ``path`` with its suffix replaced by
    .dot. Returns (path written, a hint or None). Atomic: no half-written file is left."""
    if not isinstance(dot, str):
        raise TypeError(f"graph.write: dot must be the str to_dot returns, got "
                        f"{type(dot).__name__}")
    path = fspath(path, 'graph.write')
    stem, suffix = os.path.splitext(path)
    fmt = suffix.lstrip('.').lower()
    if fmt not in ('svg', 'png', 'pdf', 'dot'):
        raise ValueError(f"graph.write: the path must end in .svg, .png, .pdf or .dot, got "
                         f"{path!r}")
    if fmt in ('svg', 'png', 'pdf') and shutil.which('dot'):
        rendered = subprocess.run(['dot', f'-T{fmt}'], input=dot.encode(), capture_output=True,
                                  check=True).stdout
        with atomic_write(path, 'graph.write') as f:
            f.write(rendered)
        return path, None
    target = path if fmt == 'dot' else stem + '.dot'
    with atomic_write(target, 'graph.write') as f:
        f.write(dot.encode())
    hint = None if fmt == 'dot' else (
        f"Graphviz's dot is not installed: wrote {target}; render it with "
        f"`dot -T{fmt} {target} -o {path}` (Debian: apt-get install graphviz)")
    return target, hint
