#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.complexity`."""
import sys

from mmbcssl.benchmarks.complexity import main

if __name__ == '__main__':
    sys.exit(main())
