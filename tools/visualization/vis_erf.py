#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.vis_erf`."""
import sys

from mmbcssl.cli.vis_erf import main

if __name__ == '__main__':
    sys.exit(main())
