# EsViT pre-training of Swin-T for 300 epochs on ImageNet-1k (Li et al.
# 2021; the EsViT baseline of the BC-SSL paper's Table 4): the DINO Swin-T
# 300-epoch recipe (configs/dino/swin-t_300e.py: same crops, optimiser,
# schedules and teacher), plus a region head and the region-matching loss.
# EsViT's README command for Swin-T (microsoft/esvit) sets what differs
# from main_esvit.py's defaults: teacher temperature 0.04 -> 0.07 over the
# first 30 epochs (--teacher_temp 0.07 --warmup_teacher_temp_epochs 30,
# from the default --warmup_teacher_temp 0.04), 10 warm-up epochs, and both
# heads with their last layer free (--norm_last_layer false); 16 GPUs x 32.
# 8 GPUs x 64 = 512 images per step (EsViT: 16 x 32 = 512):
# tools/dist_train.sh <this> 8
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
