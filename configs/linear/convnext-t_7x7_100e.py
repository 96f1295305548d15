# Linear probe of vanilla ConvNeXt-T 7x7 (no BN after the depthwise conv)
# after DINO 100 epochs (configs/dino/convnext-t_7x7_100e.py): the BN
# ablation.
_base_ = './bcssl-t_9x9_100e.py'
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/convnext-t_7x7_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    backbone=dict(
        kernel_size=7, dw_norm_cfg=None,
        init_cfg=dict(checkpoint=pretrained)))
