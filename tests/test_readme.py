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
