# ViT-S/16 (DeiT-small dimensions: 384 wide, 12 layers, 6 heads), the
# class token as the pooled feature, as in DINO.
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
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        drop_path_rate=0.1),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='CrossEntropyLoss')))
