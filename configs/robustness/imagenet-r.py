# ImageNet-R (Hendrycks et al. 2021, "The Many Faces of Robustness"):
# 30,000 renditions of 200 ImageNet classes in <root>/<wnid>/ folders.
# Protocol: the 1000-way linear probe's logits are restricted to the 200
# classes (ascending ImageNet order) before top-1/top-5 (SubsetAccuracy).
# The 200 classes are the official fixed list (hendrycks/imagenet-r README;
# timm/data/_info/imagenet_r_synsets.txt), not the folders found: a copy
# without some of them stops with the missing wnids named.
#   tools/test.py configs/robustness/imagenet-r.py <linear-probe ckpt>
# The model is the BC-SSL-T 9x9 probe; another one with
#   --model-from configs/linear/<model>.py
_base_ = '../linear/linear_bcssl-t-9x9_dino-100e-pre_8xb128-coslr-100e_in1k.py'  # noqa: E501
data_root = 'data/imagenet-r'

# dataset settings
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ImageNetSubset',
        data_root=data_root,
        base_classes='imagenet-1k',  # the probe's label space
        subset_classes='imagenet-r',  # the official 200 wnids
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='SubsetAccuracy', topk=(1, 5))
