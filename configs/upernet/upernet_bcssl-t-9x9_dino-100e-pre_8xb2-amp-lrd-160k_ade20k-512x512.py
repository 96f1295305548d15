# UperNet on ADE20K from BC-SSL-T 9x9, DINO 100 epochs
# (configs/dino/bcssl-t_9x9_100e.py).
# Recipe: ConvNeXt's, with stage-wise LR decay
# (configs/_base_/segmentation/upernet_bcssl-t_160k_ade20k.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/segmentation/upernet_bcssl-t_160k_ade20k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
