# ImageNet-Sketch protocol on the demo's sketch set (data/demo/
# imagenet-sketch/sketch/<wnid>/, all 10 classes) with the demo linear
# probe; see imagenet-r_demo.py.
_base_ = './imagenet-r_demo.py'

# dataset settings
test_dataloader = dict(
    dataset=dict(
        data_root='data/demo/imagenet-sketch',
        data_prefix='sketch',
        subset_classes=None))
