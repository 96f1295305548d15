# Mask R-CNN 3x on COCO from BC-SSL-T 3x3, DINO 100 epochs
# (configs/dino/bcssl-t_3x3_100e.py).
# Recipe: ConvNeXt's, with layer-wise LR decay
# (configs/_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_3x3_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(kernel_size=3, init_cfg=dict(checkpoint=pretrained)))
