# Linear probe of BC-SSL-T 9x9 after DINO 300 epochs
# (configs/dino/bcssl-t_9x9_300e.py; Table 5 of arXiv 2312.05695,
# 300-epoch rows). Features and recipe as the 100-epoch probe.
_base_ = './linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
