# Swin-T as the BC-SSL paper's self-supervised Swin-T baselines build it
# (DINO through the authors' fork, Shiweiliuiiiiiii/dino, and EsViT: both
# take microsoft/esvit models/swin_transformer.py), pooled by global average
# pooling. OriginalSwinTransformer decides windows and shifts for the 224-px
# input as that code does (the 7 x 7 last stage: one window, no shift, at
# every input size) and builds every LayerNorm with its eps 1e-6
# (get_cls_model: norm_layer=partial(nn.LayerNorm, eps=1e-6)).
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
        type='OriginalSwinTransformer', arch='tiny', img_size=224,
        windows_at_img_size=True, norm_cfg=dict(type='LN', eps=1e-6),
        drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss')))
