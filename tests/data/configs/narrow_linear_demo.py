# The demo linear probe (recipe, pipelines, 10 classes) on a narrow BC-SSL:
# the same blocks, one per stage, 32-256 channels. For the tests of the
# evaluation protocols, which do not depend on the width.
_base_ = '../../../configs/linear/linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-demo.py'  # noqa: E501
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                  channels=[32, 64, 128, 256])),
    head=dict(in_channels=256))
