# BC-SSL-T with 7x7 depthwise kernels (the paper's kernel sweep).
_base_ = './bcssl-t_9x9.py'

# model settings
model = dict(backbone=dict(kernel_size=7))
