# UperNet on ADE20K from Swin-T pre-trained with DINO for 300 epochs
# (configs/dino/swin-t_300e.py), with the ConvNeXt recipe that the BC-SSL
# rows use (stage-wise decay 0.9, AMP; configs/_base_/segmentation/
# upernet_bcssl-t_160k_ade20k.py). Not the recipe of the paper's Swin rows
# (that is Swin's own: the config without -lrd); this one puts Swin on
# BC-SSL's recipe, to separate the recipe from the backbone.
# 8 GPUs x 2 = 16: tools/dist_train.sh <this> 8
_base_ = '../_base_/segmentation/upernet_bcssl-t_160k_ade20k.py'
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
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))
