# Pipelines of the classification-style demo sets (tools/misc/
# make_demo_data.py): 96 px images; 64 px crops, val short side 73 + centre
# crop 64 (the 224 / 256 ratio of the ImageNet protocol); the train crop
# bilinear and the val resize bicubic, as in configs/_base_/datasets/
# imagenet_linear.py. Names carry a demo_ prefix so that this file can sit
# next to any other base.
demo_classes = 'data/demo/imagenet/meta/classes.txt'  # the 10 wnids
demo_train_pipeline = [
    dict(type='LoadImageFromFileSafe', on_error='raise'),
    dict(type='RandomResizedCrop', scale=64, backend='pillow',
         interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
demo_test_pipeline = [
    dict(type='LoadImageFromFileSafe', on_error='raise'),
    dict(type='ResizeEdge', scale=73, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
