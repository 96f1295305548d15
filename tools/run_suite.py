#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.run_suite`."""
import sys

from mmbcssl.cli.run_suite import main

if __name__ == '__main__':
    sys.exit(main())
