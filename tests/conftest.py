"""The ``device`` fixture: a test that takes it runs once per device, 'cpu' always and
'cuda' (marked ``gpu``) when ``minidl.cuda.is_available()``, otherwise skipped with the
reason. ``python -m pytest -q -m gpu`` runs only the GPU cases."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

from helpers import DEVICES  # noqa: E402


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
