# Linear probe of BC-SSL-T 5x5 after DINO 100 epochs
# (configs/dino/bcssl-t_5x5_100e.py; the kernel sweep of Table 5 in
# arXiv 2312.05695). Features and recipe as the 9x9 probe.
_base_ = './linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_5x5_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=5, init_cfg=dict(checkpoint=pretrained)))
