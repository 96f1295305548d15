# Linear probe of ViT-S/16 after DINO 100 epochs
# (configs/dino/vit-s16_100e.py; Table 5 of arXiv 2312.05695).
# Features: the class tokens of the last 4 blocks, each after the final
# norm, concatenated (4 x 384 = 1536-d): DINO's own ViT-S protocol
# (facebookresearch/dino, eval_linear.py: n_last_blocks=4,
# avgpool_patchtokens=False), which the paper's ViT-S row follows.
# 8 GPUs x 128 = 1024: tools/dist_train.sh <this> 8
_base_ = [
    '../_base_/models/vit-s16.py',
    '../_base_/linear_in1k.py',
]
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/vit-s16_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='VisionTransformerLastBlocks',
        num_last_blocks=4,
        frozen_stages=12,  # patch embedding, all 12 layers, final norm
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=4 * 384))
