"""README's set-up commands are the ones CI and users run."""
import os

ROOT = os.path.join(os.path.dirname(__file__), '..')


def _read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def test_ci_runs_exactly_the_readme_test_command():
    line = next(l for l in _read('.ci/run').splitlines() if l.endswith('# README test command'))
    command = line.rsplit('  #', 1)[0].strip()
    assert command in _read('README.md').splitlines()


def test_readme_python_examples_run(tmp_path, monkeypatch):
    import re
    blocks = re.findall(r"```python\n(.*?)```", _read('README.md'), re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)  # the example writes a checkpoint
    exec(compile('\n'.join(blocks), 'README.md', 'exec'), {'print': lambda *a, **k: None})
    assert (tmp_path / 'ckpt.npz').exists()


def test_the_one_screen_backward_in_the_docs_is_the_code():
    import inspect
    import re
    from minidl.tensor import run_backward
    doc = re.search(r"## The whole idea on one screen\n\n```python\n(.*?)```",
                    _read('docs/autograd.md'), re.S).group(1)
    source = inspect.getsource(run_backward)
    shown = [l for l in doc.splitlines() if l.strip() and l.strip() != '...']
    assert len(shown) >= 15
    missing = [l for l in shown if l not in source.splitlines()]
    assert not missing, f"docs/autograd.md shows lines that are not in run_backward: {missing}"
    body = [l for l in source.split('"""')[-1].splitlines() if l.strip()]
    assert len(body) <= 25, f"run_backward's body is {len(body)} lines, no longer one screen"


def test_the_readable_code_in_the_docs_is_the_reference_code():
    import inspect
    import re
    from minidl.functional import reference
    source = inspect.getsource(reference).splitlines()
    for path, heading in (('docs/autograd.md', '## An op that is only a composition'),
                          ('docs/lrn.md', '## The readable versions')):
        block = re.search(r"```python\n(.*?)```", _read(path).split(heading, 1)[1], re.S)
        lines = [l.strip() for l in block.group(1).splitlines()
                 if l.strip().startswith(('sq =', 's =', 'return x /'))]
        assert len(lines) == 3, path
        for line in lines:
            assert any(l.strip() == line for l in source), f"{path}: {line!r} not in reference.py"
