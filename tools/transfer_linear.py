#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.transfer_linear`."""
import sys

from mmbcssl.cli.transfer_linear import main

if __name__ == '__main__':
    sys.exit(main())
