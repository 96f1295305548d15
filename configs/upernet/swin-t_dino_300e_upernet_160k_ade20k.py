# UperNet on ADE20K from Swin-T pre-trained with DINO, 300 epochs
# (configs/dino/swin-t_300e.py). Same recipe as BC-SSL (stage-wise decay).
_base_ = '../_base_/segmentation/upernet_bcssl-t_160k_ade20k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_dino_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.SwinTransformer',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.')))
