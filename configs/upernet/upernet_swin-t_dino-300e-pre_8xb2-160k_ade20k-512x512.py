# UperNet on ADE20K from Swin-T pre-trained with DINO for 300 epochs
# (configs/dino/swin-t_300e.py), with Swin's own segmentation
# recipe (no layer decay;
# configs/_base_/segmentation/upernet_swin-t_160k_ade20k.py).
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/segmentation/upernet_swin-t_160k_ade20k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
