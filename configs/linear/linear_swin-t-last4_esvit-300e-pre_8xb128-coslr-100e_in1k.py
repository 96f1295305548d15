# Linear probe of Swin-T after EsViT 300 epochs
# (configs/esvit/esvit_swin-t_300e.py; EsViT, Li et al. 2021, Table 1).
# Features: the last 4 blocks' token averages, concatenated (2304-d), as
# EsViT's own eval_linear.py (microsoft/esvit, n_last_blocks 4).
_base_ = './linear_swin-t-last4_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/esvit_swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
