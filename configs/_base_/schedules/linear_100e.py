# Linear probe optimisation (facebookresearch/dino, eval_linear.py):
# SGD momentum 0.9, no weight decay, lr 0.001 * batch / 256, cosine to 0
# over 100 epochs. 8 GPUs x 128 = 1024 images; lr = 0.001 * 1024 / 256.
base_lr = 0.001 * 1024 / 256
max_epochs = 100

# optimizer
optim_wrapper = dict(
    type='OptimWrapper',
    # stops (or skips the step) on a NaN/Inf loss; --amp keeps that
    constructor='GuardedOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, weight_decay=0.))

# learning rate
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=0.,
         by_epoch=True, begin=0, end=max_epochs)
]

# runtime
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
# tools/train.py --auto-scale-lr rescales base_lr for another global batch
auto_scale_lr = dict(base_batch_size=1024)
