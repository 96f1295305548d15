#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.analyze_logs`."""
import sys

from mmbcssl.cli.analyze_logs import main

if __name__ == '__main__':
    sys.exit(main())
