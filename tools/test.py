#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.test`."""
import sys

from mmbcssl.cli.test import main

if __name__ == '__main__':
    sys.exit(main())
