# BC-SSL-T 9x9, 300 epochs (paper Tables 4 and 5, 300-epoch rows).
_base_ = './bcssl-t_9x9_100e.py'
max_epochs = 300

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
