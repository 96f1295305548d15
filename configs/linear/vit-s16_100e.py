# Linear probe of ViT-S/16 after DINO 100 epochs
# (configs/dino/vit-s16_100e.py; paper Table 5: 73.5 top-1), on the class
# token after the final norm.
# Note: DINO's own ViT-S probe concatenates the class tokens of the last 4
# blocks (its eval_linear.py, n_last_blocks=4); this config probes the last
# block only, the feature the DINO head was trained on.
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
        frozen_stages=12,  # patch embedding, all 12 layers, final norm
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
