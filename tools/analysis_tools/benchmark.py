#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.inference`."""
import sys

from mmbcssl.benchmarks.inference import main

if __name__ == '__main__':
    sys.exit(main())
