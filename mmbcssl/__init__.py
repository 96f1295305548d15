"""mmbcssl: does a self-supervised backbone transfer?

Importing the package applies the compatibility fixes of
:mod:`mmbcssl.compat` and registers every component into the OpenMMLab
registries (mmpretrain's for classification and self-supervised parts), so a
config only needs ``custom_imports = dict(imports=['mmbcssl'])``.
"""
from .version import __version__
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__']
