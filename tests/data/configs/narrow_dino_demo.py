# The DINO demo recipe (configs/dino/bcssl-t_9x9_100e_demo.py: views,
# schedules, teacher, SyncBN in distributed runs) on a narrow BC-SSL (the
# same blocks, one per stage, 8-16 channels) and a small head. For the tests
# of training mechanics (resumption, launch, the iteration benchmark), which
# do not depend on the width.
_base_ = '../../../configs/dino/bcssl-t_9x9_100e_demo.py'
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                  channels=[8, 8, 16, 16])),
    head=dict(in_channels=16, hidden_channels=32, bottleneck_channels=16,
              out_channels=64),
    loss=dict(out_channels=64))
