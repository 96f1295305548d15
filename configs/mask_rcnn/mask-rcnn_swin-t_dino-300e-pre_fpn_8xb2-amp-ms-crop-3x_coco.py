# Mask R-CNN 3x on COCO from Swin-T pre-trained with DINO for 300 epochs
# (configs/dino/swin-t_300e.py), with Swin's own detection recipe (no layer
# decay; configs/_base_/detection/mask-rcnn_swin-t_fpn_3x_coco.py): the
# recipe of the Swin rows of Table 4 in arXiv 2312.05695.
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/detection/mask-rcnn_swin-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
