# DINO with Swin-T (mmpretrain SwinTransformer), pooled by GAP. Global
# batch 512 as the paper's text; the authors ran 4 x 64 = 256:
# swin-t_4xb64_100e.py.
_base_ = './bcssl-t_9x9_100e.py'

# model settings
model = dict(
    backbone=dict(_delete_=True, type='SwinTransformer', arch='tiny',
                  img_size=224, drop_path_rate=0.1,
                  # 96 px local crops give 6 x 6 and 3 x 3 maps in the last
                  # two stages, smaller than the 7 x 7 window. Note: the
                  # original Swin (and EsViT) shrinks the window to the map
                  # there; mmpretrain can only pad the map to the window.
                  pad_small_map=True),
    neck=dict(type='GlobalAveragePooling'))
