# ResNet-18 (mmpretrain's ResNet, as mmpretrain's configs/_base_/models/
# resnet18.py), pooled by global average pooling, with a 1000-class linear
# head: the ResNet-50 model of ./resnet50.py at depth 18 (512 channels out).
_base_ = ['./resnet50.py']

# model settings
model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
