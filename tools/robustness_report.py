#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.robustness_report`."""
import sys

from mmbcssl.cli.robustness_report import main

if __name__ == '__main__':
    sys.exit(main())
