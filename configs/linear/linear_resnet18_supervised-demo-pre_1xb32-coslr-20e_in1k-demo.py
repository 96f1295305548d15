# The linear probe at demo size of the supervised ResNet-18 control
# (configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py; trained with
# labels on the demo train split) on the demo ImageNet-layout set
# (data/demo/imagenet: 10 classes, 96 px).
# Features: the globally average-pooled last stage (512-d), as DINO's
# eval_linear.py pools ResNets (facebookresearch/dino: the torchvision
# ResNet with its fc replaced by the identity). Frozen backbone (stem, all
# four stages, BN statistics), one linear layer on top.
# Everything else is the BC-SSL demo probe's, which this config inherits
# (linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py): 64 px
# crops (val: short side 73 + centre crop 64), 1 process x 32 images, 20
# epochs, lr 0.01 (its note).
_base_ = ['./linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py']
pretrained = '{{$MMBCSSL_PRETRAINED:work_dirs/demo/supervised/epoch_8.pth}}'  # noqa: E501

# model settings: ResNet-18 (../_base_/models/resnet18.py) in place of the
# BC-SSL backbone, its pooled 512-d output into the 10-class linear head
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=18,
        out_indices=(3, ),
        frozen_stages=4,  # stem and all four stages, BN in eval mode
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=512))
