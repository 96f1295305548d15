# Linear probe on ImageNet-1k of BC-SSL-T 9x9 after DINO 100 epochs
# (configs/dino/bcssl-t_9x9_100e.py; arXiv 2312.05695, Table 5).
# Features: the teacher backbone's last stage, globally average-pooled and
# layer-normalised (768-d), as DINO's eval_linear.py pools CNN backbones
# (facebookresearch/dino, eval_linear.py: the backbone's pooled output).
# Frozen backbone (all stages, the output norm and the BN statistics), one
# linear layer on top (configs/_base_/linear_in1k.py: SGD, cosine, 100 ep).
# 8 GPUs x 128 = 1024: tools/dist_train.sh <this> 8
_base_ = [
    '../_base_/models/bcssl-t_9x9.py',
    '../_base_/linear_in1k.py',
]
# backbone weights extracted from the pre-training checkpoint with
# tools/model_converters/extract_backbone.py (teacher)
pretrained = '{{$MMBCSSL_PRETRAINED:checkpoints/bcssl-t_9x9_100e_backbone.pth}}'  # noqa: E501

# model settings
model = dict(
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        frozen_stages=4,  # all four stages, and the output norm
        norm_eval=True,  # BN statistics stay those of pre-training
        drop_path_rate=0.,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
