# Linear probe of Swin-T after DINO 300 epochs (configs/dino/swin-t_300e.py)
# with the EsViT protocol: the classifier sees the concatenated token-average
# of Swin's last 4 blocks (2 x 384 + 2 x 768 = 2304-d) instead of the pooled
# last stage (Li et al. 2021; microsoft/esvit eval_linear.py, n_last_blocks
# 4). Compare with swin-t_300e.py to see what the protocol alone is worth.
_base_ = './swin-t_300e.py'

# model settings
model = dict(
    backbone=dict(type='SwinTransformerLastBlocks', num_last_blocks=4),
    neck=None,  # the backbone already returns pooled features
    head=dict(in_channels=2304))
