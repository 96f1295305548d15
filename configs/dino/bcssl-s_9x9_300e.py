# BC-SSL-S 9x9 (depths 3-3-27-3), 300 epochs.
_base_ = './bcssl-t_9x9_300e.py'

# model settings
model = dict(backbone=dict(arch='small', drop_path_rate=0.1))
