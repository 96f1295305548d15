# ImageNet-R scored over all the demo probe's classes (the authors'
# variant of imagenet-r_1000way.py) on the demo set; see imagenet-r_demo.py.
_base_ = './imagenet-r_demo.py'

# evaluation
test_evaluator = dict(restrict_to_subset=False)
