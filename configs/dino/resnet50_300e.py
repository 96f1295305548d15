# DINO with ResNet-50, 300 epochs (arXiv 2312.05695, Table 5, 300-epoch
# rows), pooled by GAP (2048-d features).
_base_ = './bcssl-t_9x9_300e.py'

# model settings
model = dict(
    backbone=dict(_delete_=True, type='ResNet', depth=50, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=2048))
