# A classifier small enough to train for a few iterations on 2 CPU cores;
# the entry-tool tests run it through tools/train.py, tools/test.py and
# tools/dist_train.sh. The data root is set by the tests (--cfg-options).
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet', depth=18, stem_channels=8, base_channels=8,
        norm_cfg=dict(type='BN')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss'),
        topk=(1, 5)))

# dataset settings
data_root = 'data/demo/imagenet'
data_preprocessor = dict(
    num_classes=10,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# optimizer
optim_wrapper = dict(
    constructor='mmpretrain.GuardedOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))

# learning rate
param_scheduler = dict(type='ConstantLR', factor=1.0, by_epoch=False)

# runtime
train_cfg = dict(by_epoch=False, max_iters=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    checkpoint=dict(
        type='mmpretrain.SafeCheckpointHook', by_epoch=False, interval=2),
    logger=dict(type='LoggerHook', interval=1))
env_cfg = dict(dist_cfg=dict(backend='nccl'))  # the tools switch to gloo
log_level = 'INFO'
randomness = dict(seed=0, deterministic=False)
