# ImageNet-Sketch (Wang et al. 2019): about 50,000 sketches of all 1000
# classes in <root>/sketch/<wnid>/ folders. Labels come from the folder
# names; a partial copy is evaluated against the right logit columns.
#   tools/test.py configs/robustness/imagenet-sketch.py <linear-probe ckpt>
#       [--model-from configs/linear/<model>.py]
_base_ = './imagenet-r.py'
data_root = 'data/imagenet-sketch'

# dataset settings
# all 1000 classes, taken from the folders found (no fixed subset)
test_dataloader = dict(
    dataset=dict(
        data_root=data_root, data_prefix='sketch', subset_classes=None))
