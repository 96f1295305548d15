#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.test`."""
import sys

from mmbcssl.apis.test import main

if __name__ == '__main__':
    sys.exit(main())
