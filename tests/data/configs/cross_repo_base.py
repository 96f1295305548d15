# Inherits from an installed package's config through `mmpretrain::`, which
# mmengine 0.10.7 resolves with pkg_resources.
_base_ = ['mmpretrain::_base_/models/resnet18.py']
