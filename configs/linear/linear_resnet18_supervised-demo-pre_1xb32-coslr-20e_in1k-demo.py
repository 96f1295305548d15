# The linear probe at demo size of the supervised ResNet-18 control
# (configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py; trained with
# labels on the demo train split) on the demo ImageNet-layout set
# (data/demo/imagenet: 10 classes, 96 px).
# Features: the globally average-pooled last stage (512-d), as DINO's
# eval_linear.py pools ResNets (facebookresearch/dino: the torchvision
# ResNet with its fc replaced by the identity). Frozen backbone (stem, all
# four stages, BN statistics), one linear layer on top.
# Everything else is the BC-SSL demo probe's (linear_bcssl-t-9x9_dino-demo-
# pre_1xb32-coslr-20e_in1k-demo.py): 64 px crops (val: short side 73 +
# centre crop 64), 1 process x 32 images, 20 epochs, lr 0.01 (its note).
_base_ = [
    '../_base_/models/resnet18.py',
    '../_base_/linear_in1k.py',
    '../_base_/datasets/demo_classification.py',
]
pretrained = '{{$MMBCSSL_PRETRAINED:work_dirs/demo/supervised/epoch_8.pth}}'  # noqa: E501
data_root = 'data/demo/imagenet'
max_epochs = 20

# model settings
model = dict(
    data_preprocessor=dict(num_classes=10),
    backbone=dict(
        frozen_stages=4,  # stem and all four stages, BN in eval mode
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
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
