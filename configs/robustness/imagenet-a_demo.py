# ImageNet-A protocol on the demo's hard-example set (data/demo/imagenet-a)
# with the demo linear probe; see imagenet-r_demo.py. The demo classes that
# are in the official ImageNet-A list must all be there.
_base_ = './imagenet-r_demo.py'

# dataset settings
test_dataloader = dict(
    dataset=dict(
        data_root='data/demo/imagenet-a', subset_classes='imagenet-a'))
