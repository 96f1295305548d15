# Mask R-CNN 3x on COCO from Swin-T pre-trained with EsViT, 300 epochs
# (configs/esvit/swin-t_300e.py): the DINO Swin-T config with other weights.
_base_ = './swin-t_dino_300e_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_esvit_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
