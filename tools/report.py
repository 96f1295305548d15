#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.report`."""
import sys

from mmbcssl.cli.report import main

if __name__ == '__main__':
    sys.exit(main())
