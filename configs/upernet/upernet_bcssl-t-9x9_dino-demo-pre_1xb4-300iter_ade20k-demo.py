# The UperNet recipe at demo size: BC-SSL-T 9x9 from the demo DINO run
# (its teacher, work_dirs/demo/suite/weights/backbone_teacher.pth, extracted
# by bash tools/demo.sh) on the
# demo segmentation set (data/demo/seg: ADE20K layout, the COCO-style demo
# scenes with one label per shape class, 0 = background, ignored as in
# ADE20K). What changes: 192 px images with 128 px crops, plain BN (one CPU
# process), fp32, 1 process x 4 images, 300 iterations, whole-image test.
_base_ = './upernet_bcssl-t-9x9_dino-100e-pre_8xb2-amp-lrd-160k_ade20k-512x512.py'  # noqa: E501
pretrained = '{{$MMBCSSL_PRETRAINED:work_dirs/demo/suite/weights/backbone_teacher.pth}}'  # noqa: E501
data_root = 'data/demo/seg'
crop_size = (128, 128)
max_iters = 300

# model settings
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(dw_norm_cfg=dict(type='BN'), drop_path_rate=0.1,
                  init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(num_classes=10, channels=128),
    auxiliary_head=dict(num_classes=10, channels=64),
    test_cfg=dict(_delete_=True, mode='whole'))

# dataset settings
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star', 'cross', 'open_ring',
             'diamond', 'hexagon', 'crescent', 'arrow'),
    palette=[[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
             [245, 130, 48], [145, 30, 180], [70, 240, 240],
             [240, 50, 230], [210, 245, 60], [250, 190, 212]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(192, 192), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(192, 192), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
img_ratios = [0.75, 1.0, 1.25]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale_factor=r, keep_ratio=True)
              for r in img_ratios],
             [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')],
             [dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]
         ])
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png',
               reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(**dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training')))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(**dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

# optimizer: 1 process x 4 images, fp32; lr 2e-4 for a run of minutes
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmpretrain.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.9, decay_type='stage_wise',
                       num_layers=6))

# learning rate
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=1.0, begin=30, end=max_iters, eta_min=0.0,
         by_epoch=False),
]

# runtime
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
