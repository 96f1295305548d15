# The headline recipe at demo size: BC-SSL-T 9x9 on the built-in demo data
# (make it with tools/misc/make_demo_data.py), on CPU in a few minutes.
# What changes: crops 64/32 px with 4 local views (blur radius scaled
# with them), a smaller projection
# head, batch 32 on one process, 3 epochs (1 warm-up): about 5 s per
# step on 2 CPU cores, 13 steps per epoch. The architecture,
# loss, teacher and optimiser mechanics are the real ones.
_base_ = './bcssl-t_9x9_100e.py'
max_epochs = 3
data_root = 'data/demo/imagenet'

# model settings
model = dict(
    head=dict(out_channels=4096, hidden_channels=512,
              bottleneck_channels=128),
    loss=dict(out_channels=4096))

# dataset settings
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=[
            # an unreadable image is an error naming the file; 'skip' trains
            # around it (counted and logged)
            dict(type='LoadImageFromFileSafe', on_error='raise'),
            # DINO's blur radius (0.1-2 px) is in pixels: on 64/32-px views
            # it would blur ~3x harder than on 224/96-px ones, so it is
            # scaled with the crop sizes (64/224 and 32/96, about 0.3)
            dict(type='DINOMultiCrop', global_crop_size=64,
                 local_crop_size=32, num_local_crops=4,
                 blur_radius=(0.03, 0.6)),
            dict(type='PackInputs'),
        ]))

# optimizer: 1 process x 32 images; lr scaled as 0.0005 * 32 / 256
optim_wrapper = dict(optimizer=dict(lr=0.0005 * 32 / 256))
# the batch that lr is for (--auto-scale-lr scales from it)
auto_scale_lr = dict(base_batch_size=32)

# learning rate
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]

# runtime
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=1, max_keep_ckpts=2))
