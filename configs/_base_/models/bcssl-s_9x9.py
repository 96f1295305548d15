# BC-SSL-S: depths 3-3-27-3 (about 50M parameters), 9x9 kernels.
_base_ = './bcssl-t_9x9.py'

# model settings
model = dict(backbone=dict(arch='small', drop_path_rate=0.2))
