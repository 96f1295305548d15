#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.extraction`."""
import sys

from mmbcssl.benchmarks.extraction import main

if __name__ == '__main__':
    sys.exit(main())
