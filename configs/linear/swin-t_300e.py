# Linear probe of Swin-T after DINO 300 epochs (configs/dino/swin-t_300e.py;
# paper Table 5, 300-epoch row: 77.0).
_base_ = './swin-t_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
