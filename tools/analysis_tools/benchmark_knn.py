#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.utils.knn_benchmark`."""
from mmbcssl.utils.knn_benchmark import main

if __name__ == '__main__':
    main()
