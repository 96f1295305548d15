#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.intervals`."""
import sys

from mmbcssl.benchmarks.intervals import main

if __name__ == '__main__':
    sys.exit(main())
