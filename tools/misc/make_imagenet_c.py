#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.datasets.imagenet_c_maker`."""
import sys

from mmbcssl.datasets.imagenet_c_maker import main

if __name__ == '__main__':
    sys.exit(main())
