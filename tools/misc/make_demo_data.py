#!/usr/bin/env python
"""Make the built-in demo data. Thin wrapper: see
:mod:`mmbcssl.datasets.demo`."""
import sys

from mmbcssl.datasets.demo import main

if __name__ == '__main__':
    sys.exit(main())
