# UperNet on ADE20K from vanilla ConvNeXt-T 7x7, DINO 100 epochs
# (configs/dino/convnext-t_7x7_100e.py).
# Recipe: ConvNeXt's, with stage-wise LR decay
# (configs/_base_/segmentation/upernet_bcssl-t_160k_ade20k.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/segmentation/upernet_bcssl-t_160k_ade20k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/convnext-t_7x7_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=7, dw_norm_cfg=None,
                  init_cfg=dict(checkpoint=pretrained)))
