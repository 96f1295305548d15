# UperNet on ADE20K, 160k iterations at 512 x 512: the ConvNeXt segmentation
# recipe (Liu et al., CVPR 2022; mmseg's
# convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py, which this
# inherits for the heads, the augmentation, the poly schedule and the
# sliding-window test) with a BC-SSL-T backbone from self-supervised weights.
# Single-scale test: tools/test.py CONFIG CKPT; multi-scale + flip (ratios
# 0.5-1.75, mmseg's ADE20K TTA): tools/test.py CONFIG CKPT --tta.
_base_ = 'mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.BCSSL',
        arch='tiny',
        kernel_size=9,
        dw_norm_cfg=dict(type='SyncBN'),  # trained, synchronised
        norm_eval=False,
        drop_path_rate=0.4,
        out_indices=(0, 1, 2, 3),
        gap_before_final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=None,
                      prefix='backbone.')))

# optimizer
# 8 GPUs x 2 images = 16; AdamW lr 1e-4, wd 0.05, stage-wise decay 0.9 over
# 6 layers (the ConvNeXt ADE20K setting), no decay on biases and norms.
optim_wrapper = dict(
    constructor='mmpretrain.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.9,
        decay_type='stage_wise',
        num_layers=6))

# runtime: old checkpoints are deleted only after the new one is written
default_hooks = dict(checkpoint=dict(type='mmpretrain.SafeCheckpointHook'))

# evaluation: mmseg's IoUMetric (its numbers unchanged) keeping each test
# image's intersection and union per class, from which tools/test.py --out
# writes the outcomes file that mIoU intervals are computed from
test_evaluator = dict(type='mmpretrain.IoUOutcomeMetric')
