# DINO with ViT-S/16; the class token is the feature.
_base_ = './bcssl-t_9x9_100e.py'

# model settings
model = dict(
    backbone=dict(_delete_=True, type='VisionTransformer', arch='deit-small',
                  img_size=224, patch_size=16, out_type='cls_token',
                  drop_path_rate=0.1),
    head=dict(in_channels=384))
