"""mmbcssl: does a self-supervised backbone transfer?

Importing the package applies the version shims of :mod:`mmbcssl.compat`,
registers the file-safety layer of :mod:`mmbcssl.fileio` (safe checkpoint
loading, atomic writes) with torch and mmengine, and registers every
component into the OpenMMLab registries (mmpretrain's for classification and
self-supervised parts), so a config only needs
``custom_imports = dict(imports=['mmbcssl'])``.
"""
from .version import __version__
from . import compat, fileio

compat.apply()
fileio.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
