# DINO optimisation (Caron et al. 2021; facebookresearch/dino, main_dino.py).
# 8 GPUs x 64 = 512 images per step; lr = 0.0005 * 512 / 256 = 0.001.
base_lr = 0.0005 * 512 / 256
max_epochs = 100
warmup_epochs = 10

# optimizer
optim_wrapper = dict(
    type='DINOOptimWrapper',
    # no decay on biases/1-D; builds the DINO variant of the type, so an
    # --amp that sets AmpOptimWrapper (mmpretrain's, mim's) still gets
    # DINOAmpOptimWrapper
    constructor='DINOOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999),
                   weight_decay=0.04),
    per_tensor_clip=3.0,  # each gradient tensor clipped on its own
    freeze_last_layer_epochs=1)

# learning rate and weight decay, stepped every iteration
param_scheduler = [
    # Note: the reference warms up from exactly 0; mmengine's LinearLR
    # needs a positive start factor.
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
    # 0.04 -> 0.4: a ratio of each group's own value, so the no-decay
    # group stays at 0 (an absolute eta_min would raise it to 0.4).
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min_ratio=10.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]

# runtime
# resumes a mid-epoch checkpoint at its batch and random state (mmengine's
# loop would restart the epoch)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
custom_hooks = [
    # teacher = m * teacher + (1 - m) * student, m: 0.996 -> 1 (cosine)
    dict(type='DINOTeacherHook', base_momentum=0.996, final_momentum=1.0),
    # generator states in every checkpoint, for the exact resumption
    dict(type='RNGStateHook'),
]
# BatchNorm backbones use SyncBN in distributed runs (student and teacher).
sync_bn = 'torch'
auto_scale_lr = dict(base_batch_size=512)
