# Swin-S: depths 2-2-18-2; the paper's speed comparison for BC-SSL-S. The
# network of swin-t.py (EsViT's Swin definition: windows decided for 224 px,
# LayerNorm eps 1e-6) at the small depth.
_base_ = './swin-t.py'

# model settings
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
