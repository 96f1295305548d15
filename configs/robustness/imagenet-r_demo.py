# ImageNet-R protocol on the demo's rendition-style set (data/demo/
# imagenet-r: a subset of the 10 demo classes, made by
# tools/misc/make_demo_data.py) with the demo linear probe
# (configs/linear/linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-20e_in1k-
# demo.py): its 10 classes are the label space, so the logits are
# restricted to the subset's columns. The demo's wnids are real ones; its
# R-style set holds exactly the demo classes that are in the official
# ImageNet-R list, so the official list's check applies unchanged.
_base_ = ['./imagenet-r.py', '../_base_/datasets/demo_classification.py']
data_root = 'data/demo/imagenet-r'

# model settings: the demo probe's head
model = dict(data_preprocessor=dict(num_classes=10), head=dict(num_classes=10))

# dataset settings
test_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        base_classes={{_base_.demo_classes}},
        pipeline={{_base_.demo_test_pipeline}}))
