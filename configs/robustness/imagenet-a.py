# ImageNet-A (Hendrycks et al. 2021, "Natural Adversarial Examples"): 7,500
# images of 200 ImageNet classes in <root>/<wnid>/ folders; logits
# restricted to those 200 classes (the official protocol). The 200 classes
# are the official fixed list (natural-adv-examples eval.py, indices_in_1k;
# timm/data/_info/imagenet_a_synsets.txt): every folder must be there.
#   tools/test.py configs/robustness/imagenet-a.py <linear-probe ckpt>
#       [--model-from configs/linear/<model>.py]
_base_ = './imagenet-r.py'
data_root = 'data/imagenet-a'

# dataset settings
test_dataloader = dict(
    dataset=dict(data_root=data_root, subset_classes='imagenet-a'))
