# EsViT pre-training of Swin-T for 300 epochs on ImageNet-1k (Li et al.
# 2021; the EsViT baseline of the BC-SSL paper's Table 4): the DINO Swin-T
# 300-epoch recipe (configs/dino/swin-t_300e.py: same crops, optimiser,
# schedules and teacher), plus a region head and the region-matching loss.
# Both heads leave their last layer free (norm_last_layer=False), as
# EsViT's README command for Swin-T (microsoft/esvit) does.
# 8 GPUs x 64 = 512 images per step: tools/dist_train.sh <this> 8
_base_ = ['../dino/swin-t_300e.py']

# model settings
model = dict(
    type='EsViT',
    # The last stage's normalised map (B, 768, 7, 7) is both the pooled
    # view feature (its average) and the 49 region features.
    backbone=dict(out_indices=(3, )),
    neck=None,
    head=dict(norm_last_layer=False),
    # the same shape as the view head, with its own weights
    region_head=dict(
        type='DINOHead',
        in_channels=768,
        out_channels=65536,
        hidden_channels=2048,
        bottleneck_channels=256,
        norm_last_layer=False),
    loss=dict(type='EsViTLoss'))
