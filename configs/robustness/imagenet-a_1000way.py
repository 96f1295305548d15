# ImageNet-A scored 1000-way: the argmax over all 1000 logits, each label
# mapped to its ImageNet column, so a prediction outside the 200 classes is
# wrong. Not the official protocol (imagenet-a.py restricts the logits to
# the 200 classes); it is the variant of the BC-SSL authors' evaluation
# script, whose DINO fork leaves the 200-class mask out, and it is the one
# the paper's ImageNet-A column (arXiv 2312.05695, Table 5) matches.
#   tools/test.py configs/robustness/imagenet-a_1000way.py <linear-probe ckpt>
#       [--model-from configs/linear/<model>.py]
_base_ = './imagenet-a.py'

# evaluation
test_evaluator = dict(restrict_to_subset=False)
