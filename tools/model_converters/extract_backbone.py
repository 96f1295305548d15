#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.extract_backbone`."""
import sys

from mmbcssl.apis.extract_backbone import main

if __name__ == '__main__':
    sys.exit(main())
