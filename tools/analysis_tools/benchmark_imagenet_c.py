#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.benchmarks.imagenet_c_loading`."""
import sys

from mmbcssl.benchmarks.imagenet_c_loading import main

if __name__ == '__main__':
    sys.exit(main())
