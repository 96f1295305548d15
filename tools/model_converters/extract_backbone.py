#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.extract_backbone`."""
import sys

from mmbcssl.cli.extract_backbone import main

if __name__ == '__main__':
    sys.exit(main())
