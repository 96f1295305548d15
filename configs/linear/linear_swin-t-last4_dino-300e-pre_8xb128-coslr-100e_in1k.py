# Linear probe of Swin-T after DINO 300 epochs
# (configs/dino/swin-t_300e.py; Table 5 of arXiv 2312.05695, 300-epoch
# rows). Features: the last 4 blocks' token averages, concatenated
# (2304-d), as the 100-epoch probe.
_base_ = './linear_swin-t-last4_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
