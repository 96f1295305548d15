# Linear probe optimisation (facebookresearch/dino, eval_linear.py):
# SGD momentum 0.9, no weight decay, lr 0.001 * batch / 256, cosine to 0
# over 100 epochs. 8 GPUs x 128 = 1024 images; lr = 0.001 * 1024 / 256.
# The BC-SSL authors' probe scripts (Shiweiliuiiiiiii/dino,
# scripts/evaluation/linear_evaluation_*) ran the same rule at a smaller
# batch: 1 GPU x 256 = 256, lr 0.001 for the 100-epoch BC-SSL-T probes;
# 2 GPUs x 256 = 512, lr 0.002 for the 300-epoch ones.
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
# validate after every epoch, as eval_linear.py does (--val_freq 1): the
# best epoch is what DINO and the BC-SSL authors report, so it must be known
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# tools/train.py --auto-scale-lr rescales base_lr for another global batch
auto_scale_lr = dict(base_batch_size=1024)
