#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.dino_iter`."""
import sys

from mmbcssl.benchmarks.dino_iter import main

if __name__ == '__main__':
    sys.exit(main())
