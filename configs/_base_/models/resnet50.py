# ResNet-50 (mmpretrain's ResNet), pooled by global average pooling.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmbcssl'], allow_failed_imports=False)

# model settings
model = dict(
    type='ImageClassifier',
    # the input the weights expect (ImageNet statistics, RGB), as
    # mmpretrain's ImageNet configs; the k-NN and transfer tools read it
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(type='ResNet', depth=50, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss')))
