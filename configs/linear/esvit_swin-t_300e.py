# Linear probe of Swin-T after EsViT 300 epochs (configs/esvit/swin-t_300e.py;
# reference numbers: the EsViT paper, Li et al. 2021, Table 1) with EsViT's
# own protocol: the last 4 blocks' token averages, concatenated (2304-d).
_base_ = './swin-t_300e_last4.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_esvit_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
