# UperNet on ADE20K, 160k iterations at 512 x 512, with Swin's own recipe
# (Liu et al., ICCV 2021; SwinTransformer/Swin-Transformer-Semantic-
# Segmentation, upernet_swin_tiny_patch4_window7_512x512_160k_ade20k.py):
# AdamW lr 6e-5, betas (0.9, 0.999), wd 0.01 with none on the position
# tables and norms, 1500-iteration linear warm-up, poly decay (power 1.0),
# drop path 0.3, no layer decay. mmseg's port of that recipe
# (swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py)
# is inherited; this file swaps in OriginalSwinTransformer (mmpretrain's
# layout) started from self-supervised weights, with the windows of Swin's
# own dense backbone (Swin-Transformer-Semantic-Segmentation
# mmseg/models/backbones/swin_transformer.py: 7 x 7 in every stage, odd
# blocks shifted, maps zero-padded) and the LayerNorms of the pre-trained
# network (EsViT's Swin, used by DINO's Swin-T runs too: eps 1e-6).
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'  # noqa: E501
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.OriginalSwinTransformer',
        arch='tiny',
        windows_at_img_size=False,
        norm_cfg=dict(type='LN', eps=1e-6),
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=None,
                      prefix='backbone.')))

# optimizer: inherited (AdamW lr 6e-5, wd 0.01, no decay on the position
# tables and norms); mmengine's parameter groups, built with the NaN guard
optim_wrapper = dict(constructor='mmpretrain.GuardedOptimWrapperConstructor')

# runtime: old checkpoints are deleted only after the new one is written
default_hooks = dict(checkpoint=dict(type='mmpretrain.SafeCheckpointHook'))

# evaluation: mmseg's IoUMetric (its numbers unchanged) keeping each test
# image's intersection and union per class, from which tools/test.py --out
# writes the outcomes file that mIoU intervals are computed from
test_evaluator = dict(type='mmpretrain.IoUOutcomeMetric')
