# Linear probe of BC-SSL-T 7x7 after DINO 100 epochs
# (configs/dino/bcssl-t_7x7_100e.py; the kernel sweep of Table 5).
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_7x7_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=7, init_cfg=dict(checkpoint=pretrained)))
