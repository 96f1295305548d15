#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.dense`."""
import sys

from mmbcssl.benchmarks.dense import main

if __name__ == '__main__':
    sys.exit(main())
