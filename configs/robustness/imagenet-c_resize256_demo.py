# The authors' ImageNet-C transform (imagenet-c_resize256.py) at demo scale
# on the demo tree: the demo val transform (short side 73, centre crop 64,
# the 256 / 224 ratio) applied to the already-cropped 64-px images.
_base_ = './imagenet-c_demo.py'

# dataset settings
test_dataloader = dict(
    dataset=dict(pipeline={{_base_.demo_test_pipeline}}))
