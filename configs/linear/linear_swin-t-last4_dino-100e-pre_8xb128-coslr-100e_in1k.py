# Linear probe of Swin-T after DINO 100 epochs
# (configs/dino/swin-t_100e.py; Table 5 of arXiv 2312.05695).
# Features: the token averages of Swin's last 4 blocks, concatenated
# (2 x 384 + 2 x 768 = 2304-d; SwinTransformerLastBlocks): the protocol of
# the paper's Swin-T rows (the authors' launch scripts pass
# --n_last_blocks 4) and of EsViT (microsoft/esvit, eval_linear.py and
# SwinTransformer.forward_return_n_last_blocks).
# 8 GPUs x 128 = 1024: tools/dist_train.sh <this> 8
_base_ = [
    '../_base_/models/swin-t.py',
    '../_base_/linear_in1k.py',
]
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/swin-t_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='SwinTransformerLastBlocks',
        num_last_blocks=4,
        frozen_stages=3,  # Swin counts from 0: stages 0-3 and their norms
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,  # the backbone returns pooled features
    head=dict(in_channels=2 * 384 + 2 * 768))
