#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.apis.knn_eval`."""
import sys

from mmbcssl.apis.knn_eval import main

if __name__ == '__main__':
    sys.exit(main())
