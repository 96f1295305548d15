# ImageNet-C with the test transform of the BC-SSL authors' robustness
# script (eval_linear_robustness.py of their DINO fork): the short side
# resized to 256 (bicubic), then a centre crop of 224, as for the clean val
# set. The benchmark's images are 224 x 224 already, so this zooms in by
# 256 / 224; the official evaluation (imagenet-c.py) only centre-crops.
# The paper's ImageNet-C column (arXiv 2312.05695, Table 5) is the
# unnormalised mean error under this transform.
#   tools/test.py configs/robustness/imagenet-c_resize256.py <probe ckpt>
#       [--model-from configs/linear/<model>.py]
_base_ = './imagenet-c.py'

# dataset settings
test_pipeline = [
    dict(type='LoadImageFromFileSafe', on_error='raise'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
