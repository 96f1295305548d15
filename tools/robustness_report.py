#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.robustness_report`."""
import sys

from mmbcssl.apis.robustness_report import main

if __name__ == '__main__':
    sys.exit(main())
