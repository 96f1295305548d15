# DINO with Swin-T, 300 epochs.
_base_ = ['./bcssl-t_9x9_300e.py']

# model settings
model = dict(
    # The Swin of the authors' fork (Shiweiliuiiiiiii/dino), which is
    # microsoft/esvit models/swin_transformer.py: windows and shifts decided
    # for 224 px (the 7 x 7 last stage does not shift), maps of 96-px local
    # crops (24, 12, 6, 3 per side) zero-padded to the window at run time,
    # every LayerNorm with eps 1e-6 (get_cls_model).
    backbone=dict(_delete_=True, type='OriginalSwinTransformer', arch='tiny',
                  img_size=224, windows_at_img_size=True,
                  norm_cfg=dict(type='LN', eps=1e-6), drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'))
