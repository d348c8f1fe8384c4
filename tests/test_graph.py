"""minidl.graph.to_dot: one training step's graph as DOT text, every Function once."""
import re
import shutil

import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl import graph


def _step():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 3))
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    loss = F.cross_entropy(model(x), np.array([0, 2]))
    return model, loss


def test_the_dot_text_names_every_function_of_the_step_once():
    model, loss = _step()
    dot = graph.to_dot(loss, params=dict(model.named_parameters()))
    fns = graph.functions(loss)
    assert {type(f).__name__ for f in fns} >= {'Conv2d', 'ReLU', 'MaxPool2d', 'Dropout',
                                                'Linear', 'SoftmaxCrossEntropy'}
    for fn in fns:
        assert len(re.findall(rf'^  f{id(fn)} \[', dot, re.M)) == 1, fn.name
    boxes = re.findall(r'^  f\d+ \[shape=box', dot, re.M)
    assert len(boxes) == len(fns)


def test_parameters_are_named_and_what_is_kept_for_backward_is_shown():
    model, loss = _step()
    dot = graph.to_dot(loss, params=dict(model.named_parameters()))
    for name in ('0.weight', '0.bias', '5.weight', '5.bias'):
        assert f'"{name}\\n' in dot
    assert 'keeps index (2, 4, 4, 4) uint8' in dot      # max-pool's argmax
    assert 'keeps mask (2, 64) bool' in dot             # dropout's mask
    assert '(2, 3, 8, 8) float32' in dot                # the input, with shape and dtype


def test_edges_run_from_each_input_to_its_function_and_on_to_its_output():
    x = minidl.tensor(np.ones((2, 2)), requires_grad=True)
    y = F.relu(x * 2.0).sum()
    dot = graph.to_dot(y)
    assert dot.startswith('digraph minidl {') and dot.rstrip().endswith('}')
    edges = re.findall(r'^  (\w+) -> (\w+);', dot, re.M)
    assert len(edges) == 3 + 2 + 2   # Mul: x and 2.0 in, 1 out; ReLU and Sum: 1 in, 1 out
    assert dot.count('-> ') == len(edges)


def test_a_freed_or_unrecorded_graph_is_a_clear_error():
    _, loss = _step()
    loss.backward()
    with pytest.raises(ValueError, match='freed by backward'):
        graph.to_dot(loss)
    with pytest.raises(ValueError, match='not computed by recorded Functions'):
        graph.to_dot(minidl.tensor(np.ones(3)))


def test_write_renders_with_graphviz_or_leaves_the_dot_file_with_a_hint(tmp_path, monkeypatch):
    _, loss = _step()
    dot = graph.to_dot(loss)
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    written, hint = graph.write(dot, str(tmp_path / 'step.svg'))
    assert written.endswith('step.dot') and 'apt-get install graphviz' in hint
    assert (tmp_path / 'step.dot').read_text() == dot
    assert not (tmp_path / 'step.svg').exists()
    written, hint = graph.write(dot, str(tmp_path / 'plain.dot'))
    assert hint is None and (tmp_path / 'plain.dot').read_text() == dot


@pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's dot is not installed")
def test_write_renders_svg_with_graphviz(tmp_path):
    _, loss = _step()
    written, hint = graph.write(graph.to_dot(loss), str(tmp_path / 'step.svg'))
    assert hint is None and (tmp_path / 'step.svg').read_text().lstrip().startswith('<')
