# Mask R-CNN 3x on COCO from BC-SSL-T 9x9, DINO 300 epochs
# (configs/dino/bcssl-t_9x9_300e.py).
# Recipe: ConvNeXt's, with layer-wise LR decay
# (configs/_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
