# Mask R-CNN + FPN, 3x schedule on COCO, with layer-wise LR decay: the
# ConvNeXt detection recipe (Liu et al., CVPR 2022), as used by the BC-SSL
# paper (arXiv 2312.05695, Table 4). mmdet's ConvNeXt-T config supplies the
# model, the multi-scale / crop augmentation (from DETR) and the 36-epoch
# schedule with steps at 27 and 33; this file swaps in a BC-SSL-T backbone
# started from self-supervised weights and restores the original warm-up
# (mmdet 3's port has 1000 iterations; see "learning rate" below).
_base_ = 'mmdet::convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'  # noqa: E501
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
# The backbone weights come from a pre-training run through
# tools/model_converters/extract_backbone.py (backbone.* keys, teacher by
# default). Each config names its own default path; MMBCSSL_PRETRAINED or
# --cfg-options model.backbone.init_cfg.checkpoint=... overrides it.
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.BCSSL',
        arch='tiny',
        kernel_size=9,
        # The BN after each depthwise conv is trained (not frozen) and
        # synchronised across GPUs: detection batches are 2 per GPU.
        dw_norm_cfg=dict(type='SyncBN'),
        norm_eval=False,
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),  # FPN takes all four stages
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=None,
                      prefix='backbone.')),
    neck=dict(in_channels=[96, 192, 384, 768]))

# learning rate
# ConvNeXt's own 3x config (facebookresearch/ConvNeXt, object_detection/
# configs/convnext/mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_
# adamw_3x_coco_in1k.py) keeps the warm-up of mmdet 2's schedule_1x.py:
# linear over the first 500 iterations from 0.001 x lr (warmup_iters=500,
# warmup_ratio=0.001, written as mmdet 3's schedule_1x.py translates it);
# then x0.1 at epochs 27 and 33.
max_epochs = 36
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[27, 33], gamma=0.1)
]

# optimizer
# 8 GPUs x 2 images = 16; AdamW lr 1e-4, wd 0.05 (none on biases, norms and
# layer scales), layer decay 0.95 over the backbone's 6 layers (12 for -S).
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='mmpretrain.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.95,
        decay_type='layer_wise',
        num_layers=6),
    optimizer=dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# runtime
# old checkpoints are deleted only after the new one is written
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.SafeCheckpointHook', interval=6, max_keep_ckpts=2))

# evaluation: mmdet's CocoMetric (its numbers unchanged) keeping each test
# image's detection matches, from which tools/test.py --out writes the
# outcomes file that bbox/segm AP intervals are computed from
test_evaluator = dict(type='mmpretrain.CocoOutcomeMetric')
