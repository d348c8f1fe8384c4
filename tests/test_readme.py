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
