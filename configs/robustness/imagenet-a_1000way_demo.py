# ImageNet-A scored over all the demo probe's classes (the authors'
# variant of imagenet-a_1000way.py) on the demo set; see imagenet-a_demo.py.
_base_ = './imagenet-a_demo.py'

# evaluation
test_evaluator = dict(restrict_to_subset=False)
