#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.knn_eval`."""
import sys

from mmbcssl.cli.knn_eval import main

if __name__ == '__main__':
    sys.exit(main())
