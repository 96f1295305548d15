#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.vis_cam`."""
import sys

from mmbcssl.cli.vis_cam import main

if __name__ == '__main__':
    sys.exit(main())
