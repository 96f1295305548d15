#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.pipeline`."""
import sys

from mmbcssl.benchmarks.pipeline import main

if __name__ == '__main__':
    sys.exit(main())
