# Linear probe of BC-SSL-S 9x9 after DINO 300 epochs
# (configs/dino/bcssl-s_9x9_300e.py).
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-s_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
