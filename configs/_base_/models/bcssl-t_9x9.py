# BC-SSL-T: ConvNeXt-T macro-architecture, BatchNorm after every 9x9
# depthwise conv (arXiv 2312.05695), as an ImageNet-1k classifier
# (backbone + 1000-class linear head; the head is what Table 5 counts).
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
    backbone=dict(
        type='BCSSL',
        arch='tiny',
        kernel_size=9,
        dw_norm_cfg=dict(type='BN'),
        drop_path_rate=0.1),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss')))
