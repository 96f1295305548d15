#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.demo` (run by tools/demo.sh)."""
import sys

from mmbcssl.cli.demo import main

if __name__ == '__main__':
    sys.exit(main())
