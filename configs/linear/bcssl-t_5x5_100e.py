# Linear probe of BC-SSL-T 5x5 after DINO 100 epochs
# (configs/dino/bcssl-t_5x5_100e.py; the kernel sweep of Table 5).
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_5x5_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=5, init_cfg=dict(checkpoint=pretrained)))
