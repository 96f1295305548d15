# Mask R-CNN 3x on COCO from BC-SSL-S 9x9, DINO 300 epochs
# (configs/dino/bcssl-s_9x9_300e.py). -S has 27 blocks in stage 3, so the
# layer decay spans 12 layers (ConvNeXt-S/B convention).
# Recipe: ConvNeXt's, with layer-wise LR decay
# (configs/_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-s_9x9_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.6,
                  init_cfg=dict(checkpoint=pretrained)))

# optimizer
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
