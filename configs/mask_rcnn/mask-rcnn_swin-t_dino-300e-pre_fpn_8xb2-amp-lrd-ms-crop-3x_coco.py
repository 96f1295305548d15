# Mask R-CNN 3x on COCO from Swin-T pre-trained with DINO for 300 epochs
# (configs/dino/swin-t_300e.py), with the ConvNeXt layer-decay recipe that
# the BC-SSL rows use (configs/_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco
# .py): layer decay 0.95 over Swin-T's 12 blocks (mmpretrain's
# SwinTransformer.get_layer_depth), drop path 0.4. Not the recipe of the
# paper's Swin rows (that is Swin's own: the config without -lrd); this one
# puts Swin on BC-SSL's recipe, to separate the recipe from the backbone.
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/detection/mask-rcnn_bcssl-t_fpn_3x_coco.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    # the Swin-T of the config without -lrd: Swin's dense windows, the
    # pre-trained network's LayerNorms (eps 1e-6)
    backbone=dict(
        _delete_=True,
        type='mmpretrain.OriginalSwinTransformer',
        arch='tiny',
        windows_at_img_size=False,
        norm_cfg=dict(type='LN', eps=1e-6),
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))

# optimizer
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
