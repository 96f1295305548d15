# Linear probe of BC-SSL-S 9x9 (depths 3-3-27-3) after DINO 300 epochs
# (configs/dino/bcssl-s_9x9_300e.py). Features and recipe as the BC-SSL-T
# probe (pooled last stage, 768-d).
_base_ = './linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-s_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
