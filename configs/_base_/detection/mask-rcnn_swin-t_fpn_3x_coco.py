# Mask R-CNN + FPN, 3x schedule on COCO, with Swin's own recipe (Liu et al.,
# ICCV 2021; SwinTransformer/Swin-Transformer-Object-Detection,
# mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco.py):
# AdamW lr 1e-4, betas (0.9, 0.999), wd 0.05 with none on the absolute and
# relative position tables and on every norm, drop path 0.2, no layer
# decay, 36 epochs with steps at 27 and 33, a 500-iteration linear warm-up
# from 0.001 x lr (mmdet 2's schedule_1x.py, which that config inherits),
# multi-scale 480-800 + DETR's crop policy, mixed precision. mmdet's port of
# that recipe (swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py) is
# inherited, but for its warm-up (1000 iterations); this file swaps in
# OriginalSwinTransformer (mmpretrain's layout, which our DINO and EsViT
# checkpoints are extracted in) started from self-supervised weights. Its
# windows are those of Swin's own dense backbone
# (Swin-Transformer-Object-Detection
# mmdet/models/backbones/swin_transformer.py: 7 x 7 in every stage, odd
# blocks shifted, maps zero-padded to a multiple of the window), its
# LayerNorms those of the pre-trained network (EsViT's Swin, which DINO's
# Swin-T runs also use: eps 1e-6).
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
# The backbone weights come from a pre-training run through
# tools/model_converters/extract_backbone.py (backbone.* keys, teacher by
# default). Each config names its own default path; MMBCSSL_PRETRAINED or
# --cfg-options model.backbone.init_cfg.checkpoint=... overrides it.
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.OriginalSwinTransformer',
        arch='tiny',
        windows_at_img_size=False,
        norm_cfg=dict(type='LN', eps=1e-6),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None,
                      prefix='backbone.')))

# learning rate: Swin's warm-up (500 iterations, ratio 0.001), then x0.1
# at epochs 27 and 33
max_epochs = 36
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[27, 33], gamma=0.1)
]

# optimizer: inherited. 8 GPUs x 2 images = 16; AdamW lr 1e-4, wd 0.05,
# decay_mult 0 for 'absolute_pos_embed', 'relative_position_bias_table' and
# 'norm' (mmpretrain's Swin names its norms norm*, so the key matches them).
# mmengine's parameter groups, built with the NaN guard.
optim_wrapper = dict(constructor='mmpretrain.GuardedOptimWrapperConstructor')
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime: old checkpoints are deleted only after the new one is written
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.SafeCheckpointHook', interval=6, max_keep_ckpts=2))

# evaluation: mmdet's CocoMetric (its numbers unchanged) keeping each test
# image's detection matches, from which tools/test.py --out writes the
# outcomes file that bbox/segm AP intervals are computed from
test_evaluator = dict(type='mmpretrain.CocoOutcomeMetric')
