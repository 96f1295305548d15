# Linear probe of BC-SSL-T 9x9 after DINO 300 epochs
# (configs/dino/bcssl-t_9x9_300e.py; paper Table 5, 300-epoch row: 77.8).
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
