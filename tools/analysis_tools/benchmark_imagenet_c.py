#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.utils.imagenet_c_benchmark`."""
import sys

from mmbcssl.utils.imagenet_c_benchmark import main

if __name__ == '__main__':
    sys.exit(main())
