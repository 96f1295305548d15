#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.convert`."""
import sys

from mmbcssl.cli.convert import main

if __name__ == '__main__':
    sys.exit(main())
