# The kernel-size sweep (paper Table 5): BC-SSL-T with 3x3 kernels.
_base_ = './bcssl-t_9x9_100e.py'

# model settings
model = dict(backbone=dict(kernel_size=3))
