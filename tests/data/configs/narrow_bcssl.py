# configs/_base_/models/bcssl-t_9x9.py on a narrow backbone: the same
# blocks (9x9 depthwise conv -> BN -> LN -> MLP), one per stage, 16-128
# channels. For the tool tests whose subject (feature extraction, k-NN,
# caching, launch) does not depend on the width.
_base_ = '../../../configs/_base_/models/bcssl-t_9x9.py'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                  channels=[16, 32, 64, 128])),
    head=dict(in_channels=128))
