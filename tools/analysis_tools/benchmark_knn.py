#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.knn`."""
import sys

from mmbcssl.benchmarks.knn import main

if __name__ == '__main__':
    sys.exit(main())
