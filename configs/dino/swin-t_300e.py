# DINO with Swin-T, 300 epochs.
_base_ = ['./bcssl-t_9x9_300e.py']

# model settings
model = dict(
    backbone=dict(_delete_=True, type='SwinTransformer', arch='tiny',
                  img_size=224, drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'))
