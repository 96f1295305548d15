# Swin-S: depths 2-2-18-2; the paper's speed comparison for BC-SSL-S.
_base_ = './swin-t.py'

# model settings
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
