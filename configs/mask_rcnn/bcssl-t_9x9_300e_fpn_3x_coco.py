# Mask R-CNN 3x on COCO from BC-SSL-T 9x9, DINO 300 epochs
# (configs/dino/bcssl-t_9x9_300e.py). Paper Table 4 row: see README.
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
