# Linear probe of BC-SSL-T 3x3 after DINO 100 epochs
# (configs/dino/bcssl-t_3x3_100e.py; the kernel sweep of Table 5).
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_3x3_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=3, init_cfg=dict(checkpoint=pretrained)))
