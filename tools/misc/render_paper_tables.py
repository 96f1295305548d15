#!/usr/bin/env python
"""Thin wrapper: see :mod:`mmbcssl.cli.render_paper_tables`."""
import sys

from mmbcssl.cli.render_paper_tables import main

if __name__ == '__main__':
    sys.exit(main())
