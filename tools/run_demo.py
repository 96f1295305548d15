#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.demo` (run by tools/demo.sh)."""
import sys

from mmbcssl.apis.demo import main

if __name__ == '__main__':
    sys.exit(main())
