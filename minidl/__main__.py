"""``python -m minidl demo``: see minidl/demo.py."""
import sys

from .demo import main

if __name__ == '__main__':
    args = sys.argv[1:]
    if not args or args[0] != 'demo':
        sys.exit("usage: python -m minidl demo [--epochs N] [--seed S]")
    main(args[1:])
