# Linear probe of ResNet-50 after DINO 300 epochs
# (configs/dino/resnet50_300e.py; Table 5 of arXiv 2312.05695, 300-epoch
# rows). Features and recipe as the 100-epoch probe (pooled 2048-d).
_base_ = './linear_resnet50_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/resnet50_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
