# The trainability check behind the demo learning runs (configs/dino/
# README.md, "A fourth round"): can the backbone of those runs learn the
# demo classes *with labels* in the number of steps a CPU run affords?
# Supervised cross-entropy from random initialisation on 48 px crops (the
# global-crop size of the demo DINO runs), 150 iterations of 32 images,
# then val top-1. A backbone that labels cannot teach in N steps will not
# learn the classes from DINO's self-distillation in N steps either.
#   python -m mmbcssl.datasets.demo --out data/demo_plain --plain \
#       --train-per-class 100
#   python tools/train.py configs/dino/supervised_check/bcssl-narrow_demo.py
# The backbone is the narrow BC-SSL of the demo experiments (depths
# 1-1-3-1, channels 48-96-192-384: the tiny arch costs ~5 s per DINO step
# on 2 CPU cores). resnet18_demo.py here is the same run with
# a ResNet-18.
_base_ = [
    '../../linear/linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py'  # noqa: E501
]
data_root = 'data/demo_plain/imagenet'
iters = 150

model = dict(
    backbone=dict(
        _delete_=True,
        type='BCSSL',
        arch=dict(depths=[1, 1, 3, 1], channels=[48, 96, 192, 384]),
        kernel_size=9,
        drop_path_rate=0.1),
    head=dict(in_channels=384))

train_dataloader = dict(
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        pipeline=[
            dict(type='LoadImageFromFileSafe', on_error='raise'),
            dict(type='RandomResizedCrop', scale=48, crop_ratio_range=(
                0.4, 1.0), backend='pillow', interpolation='bicubic'),
            dict(type='RandomFlip', prob=0.5, direction='horizontal'),
            dict(type='PackInputs'),
        ]))
val_dataloader = dict(num_workers=0, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

# all parameters train: AdamW, constant lr (1e-3 was the best of 2e-4,
# 1e-3 and 4e-3 for the narrow BC-SSL)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='GuardedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = []
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=iters,
    val_interval=iters)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(by_epoch=False, interval=iters, max_keep_ckpts=1))
