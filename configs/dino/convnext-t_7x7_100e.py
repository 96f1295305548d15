# The BN ablation: vanilla ConvNeXt-T (7x7, no norm after the depthwise
# conv), same DINO recipe.
_base_ = './bcssl-t_9x9_100e.py'

# model settings
model = dict(backbone=dict(kernel_size=7, dw_norm_cfg=None))
