# Linear probe of vanilla ConvNeXt-T 7x7 (no BatchNorm after the depthwise
# conv) after DINO 100 epochs (configs/dino/convnext-t_7x7_100e.py): the BN
# ablation. Features and recipe as the BC-SSL-T probe.
_base_ = './linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/convnext-t_7x7_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(
        kernel_size=7, dw_norm_cfg=None,
        init_cfg=dict(checkpoint=pretrained)))
