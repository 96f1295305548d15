#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.utils.dino_iter_benchmark`."""
from mmbcssl.utils.dino_iter_benchmark import main

if __name__ == '__main__':
    main()
