"""``python -m minidl ...`` is the ``minidl`` command (see minidl/cli.py)."""
import sys

from .cli import main

if __name__ == '__main__':
    sys.exit(main())
