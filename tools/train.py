#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.train`."""
import sys

from mmbcssl.cli.train import main

if __name__ == '__main__':
    sys.exit(main())
