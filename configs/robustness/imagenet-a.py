# ImageNet-A (Hendrycks et al. 2021, "Natural Adversarial Examples"): 7,500
# images of 200 ImageNet classes in <root>/<wnid>/ folders; logits
# restricted to those 200 classes (the official protocol).
#   tools/test.py configs/robustness/imagenet-a.py <linear-probe ckpt>
#       [--model-from configs/linear/<model>.py]
_base_ = './imagenet-r.py'
data_root = 'data/imagenet-a'

# dataset settings
test_dataloader = dict(dataset=dict(data_root=data_root))
