# Everything of the ImageNet-1k linear probe except the backbone: data,
# schedule and runtime. A config under configs/linear/ adds a model from
# configs/_base_/models/, its data preprocessor, and freezes its backbone.
_base_ = [
    './datasets/imagenet_linear.py',
    './schedules/linear_100e.py',
    './runtime.py',  # scope and imports come with the model base
]

# runtime: keep the best probe by top-1 as well as the latest ones
default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_best='auto'))
