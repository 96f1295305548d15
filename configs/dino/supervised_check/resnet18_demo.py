# bcssl-narrow_demo.py with a ResNet-18 backbone (the
# reference point: BatchNorm everywhere, learns the demo classes quickly).
_base_ = ['./bcssl-narrow_demo.py']
model = dict(
    backbone=dict(
        _delete_=True, type='ResNet', depth=18, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=512))
