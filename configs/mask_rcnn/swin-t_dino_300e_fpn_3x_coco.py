# Mask R-CNN 3x on COCO from Swin-T pre-trained with DINO, 300 epochs
# (configs/dino/swin-t_300e.py). Same recipe as BC-SSL;
# the layer decay runs over Swin-T's 12 blocks (mmpretrain's
# SwinTransformer.get_layer_depth).
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_dino_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformer',
        arch='tiny',
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))

# optimizer
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
