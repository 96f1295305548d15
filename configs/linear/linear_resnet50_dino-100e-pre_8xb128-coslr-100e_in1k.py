# Linear probe of ResNet-50 after DINO 100 epochs
# (configs/dino/resnet50_100e.py; Table 5 of arXiv 2312.05695).
# Features: the globally average-pooled last stage (2048-d), as DINO's
# eval_linear.py for ResNet-50 (facebookresearch/dino: the torchvision
# ResNet with its fc replaced by the identity).
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
