# The Mask R-CNN recipe at demo size: BC-SSL-T 9x9 from the demo DINO run
# (bash tools/demo.sh extracts its teacher to
# work_dirs/demo/suite/weights/backbone_teacher.pth) on the
# built-in COCO-style demo data (tools/misc/make_demo_data.py), on CPU.
# What changes from the 3x COCO config it inherits: 192 px images (the demo
# size) with a light scale jitter instead of 480-800 px; 64-channel FPN and
# heads, half-size anchors and fewer RPN/RoI samples for small images; plain
# BN instead of SyncBN (one CPU process; gloo runs keep per-process
# statistics); fp32 (no AMP on CPU); 1 process x 4 images for 20 epochs
# (240 steps, about 3.3 s each on 2 cores: some 14 minutes).
# The backbone, layer-wise LR decay, optimiser and evaluation are the real
# ones.
_base_ = './mask-rcnn_bcssl-t-9x9_dino-100e-pre_fpn_8xb2-amp-lrd-ms-crop-3x_coco.py'  # noqa: E501
pretrained = '{{$MMBCSSL_PRETRAINED:work_dirs/demo/suite/weights/backbone_teacher.pth}}'  # noqa: E501
data_root = 'data/demo/coco/'
max_epochs = 20

# model settings
# Narrower FPN and heads (64 channels instead of 256, 256-d box FCs): on a
# CPU the RoI heads, not the backbone, dominate a Mask R-CNN step at this
# image size. The backbone is the full BC-SSL-T 9x9.
channels = 64
model = dict(
    backbone=dict(dw_norm_cfg=dict(type='BN'), drop_path_rate=0.1,
                  init_cfg=dict(checkpoint=pretrained)),
    neck=dict(out_channels=channels),
    # anchors half the COCO size (16 px on P2): the demo objects are
    # 15-40 px, and 32 px anchors leave the smallest without a positive
    rpn_head=dict(in_channels=channels, feat_channels=channels,
                  anchor_generator=dict(scales=[4])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256,
                       num_classes=10),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels,
                       num_classes=10)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

# dataset settings
# the category names of data/demo/coco/annotations/*.json (10 shapes)
metainfo = dict(classes=('circle', 'square', 'triangle', 'star', 'cross',
                         'open_ring', 'diamond', 'hexagon', 'crescent',
                         'arrow'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoiceResize',
         scales=[(320, 160), (320, 192), (320, 224)], keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 192), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# optimizer: 1 process x 4 images. lr 1e-3 rather than the linearly scaled
# 2.5e-5 (1e-4 x 4 / 16): the demo has 240 steps, not 36 epochs of COCO.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))

# learning rate
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=12),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[16, 19], gamma=0.1)
]

# runtime
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
default_hooks = dict(logger=dict(interval=4),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
