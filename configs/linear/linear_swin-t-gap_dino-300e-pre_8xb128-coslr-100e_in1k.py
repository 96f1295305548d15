# Linear probe of Swin-T after DINO 300 epochs
# (configs/dino/swin-t_300e.py) on the globally pooled last stage (768-d)
# instead of the last 4 blocks: the feature the DINO head was trained on.
# Not the paper's protocol (that is the last-4 probe); compare the two to
# see what the feature choice alone is worth.
# 8 GPUs x 128 = 1024: tools/dist_train.sh <this> 8
_base_ = [
    '../_base_/models/swin-t.py',
    '../_base_/linear_in1k.py',
]
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_300e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        frozen_stages=3,  # Swin counts from 0: stages 0-3 and their norms
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
