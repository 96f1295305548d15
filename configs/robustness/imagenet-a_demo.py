# ImageNet-A protocol on the demo's hard-example set (data/demo/imagenet-a)
# with the demo linear probe; see imagenet-r_demo.py.
_base_ = './imagenet-r_demo.py'

# dataset settings
test_dataloader = dict(dataset=dict(data_root='data/demo/imagenet-a'))
