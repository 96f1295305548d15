# Vanilla ConvNeXt-T (7x7, no BatchNorm after the depthwise conv): the
# paper's BN ablation, built as BCSSL without the norm so that weights and
# layer ids are interchangeable with BC-SSL.
_base_ = './bcssl-t_9x9.py'

# model settings
model = dict(backbone=dict(kernel_size=7, dw_norm_cfg=None))
