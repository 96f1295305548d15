# BC-SSL-T 9x9, 300 epochs (arXiv 2312.05695, Tables 4 and 5, 300-epoch
# rows). What changes from the 100-epoch recipe (paper section 4.1; also
# the authors' 300-epoch launch scripts): the schedule length, the teacher
# temperature warms up from 0.04 to 0.07 over the first 30 epochs, and the
# DINO head's last layer is not weight-normalised to unit norm
# (norm_last_layer=False).
_base_ = './bcssl-t_9x9_100e.py'
max_epochs = 300

# model settings
model = dict(
    head=dict(norm_last_layer=False),
    loss=dict(warmup_teacher_temp=0.04, teacher_temp=0.07,
              warmup_teacher_temp_epochs=30))

# learning rate
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10,
         end=max_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]

# runtime
train_cfg = dict(max_epochs=max_epochs)
