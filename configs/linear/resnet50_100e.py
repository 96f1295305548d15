# Linear probe of ResNet-50 after DINO 100 epochs
# (configs/dino/resnet50_100e.py; paper Table 5: 67.1 top-1), on the
# globally pooled 2048-d last stage.
# 8 GPUs x 128 = 1024: tools/dist_train.sh <this> 8
_base_ = [
    '../_base_/models/resnet50.py',
    '../_base_/linear_in1k.py',
]
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/resnet50_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        frozen_stages=4,  # stem and all four stages, BN in eval mode
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
