#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.train`."""
import sys

from mmbcssl.apis.train import main

if __name__ == '__main__':
    sys.exit(main())
