# The linear probe at demo size: BC-SSL-T 9x9 from the demo DINO run (its
# teacher, work_dirs/demo/suite/weights/backbone_teacher.pth, extracted by
# bash tools/demo.sh) on the demo ImageNet-layout set (data/demo/imagenet:
# 10 classes, 96 px).
# What changes: 64 px crops (val: short side 73 + centre crop 64, the
# 224 / 256 ratio), 10 classes, 1 process x 32 images, 20 epochs.
# Note: lr 0.01 instead of 0.001 * 32 / 256: with ~13 steps per epoch the
# reference lr leaves the layer near its initialisation (0.1 diverges); the
# probe is still linear on frozen features.
_base_ = [
    './linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py',
    '../_base_/datasets/demo_classification.py'
]
pretrained = '{{$MMBCSSL_PRETRAINED:work_dirs/demo/suite/weights/backbone_teacher.pth}}'  # noqa: E501
data_root = 'data/demo/imagenet'
max_epochs = 20

# model settings
model = dict(
    data_preprocessor=dict(num_classes=10),
    backbone=dict(init_cfg=dict(checkpoint=pretrained)),
    head=dict(num_classes=10))

# dataset settings
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline={{_base_.demo_train_pipeline}}))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline={{_base_.demo_test_pipeline}}))
test_dataloader = val_dataloader

# optimizer
optim_wrapper = dict(optimizer=dict(lr=0.01))

# learning rate
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.,
         by_epoch=True, begin=0, end=max_epochs)
]

# runtime
train_cfg = dict(max_epochs=max_epochs)  # validated every epoch
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=32)
