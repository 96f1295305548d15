# Everything of the ImageNet-1k linear probe except the backbone: data,
# schedule and runtime. A config under configs/linear/ adds a model from
# configs/_base_/models/, its data preprocessor, and freezes its backbone.
_base_ = [
    './datasets/imagenet_linear.py',
    './schedules/linear_100e.py',
    './runtime.py',  # scope and imports come with the model base
]

# runtime: keep the best epoch's probe by val top-1 (best_accuracy_top1_
# epoch_<n>.pth: the number eval_linear.py reports) as well as the latest
# ones (the last epoch's)
default_hooks = dict(
    checkpoint=dict(interval=10, max_keep_ckpts=2,
                    save_best='accuracy/top1', rule='greater'))
