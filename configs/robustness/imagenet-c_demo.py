# ImageNet-C protocol on the demo's ImageNet-C-style tree (data/demo/
# imagenet-c: the demo val images, cropped to the demo crop size of 64 as
# ImageNet-C's are to 224, corrupted with imagecorruptions at the 5
# ImageNet-C severities; an approximation, not the benchmark) with the demo
# linear probe. Centre crop only, and mCE etc. exactly as imagenet-c.py.
_base_ = ['./imagenet-c.py', '../_base_/datasets/demo_classification.py']
data_root = 'data/demo/imagenet-c'

# model settings: the demo probe's head
model = dict(data_preprocessor=dict(num_classes=10), head=dict(num_classes=10))

# dataset settings
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        base_classes={{_base_.demo_classes}},
        pipeline=[
            dict(type='LoadImageFromFileSafe', on_error='raise'),
            dict(type='CenterCrop', crop_size=64),
            dict(type='PackInputs'),
        ]))
