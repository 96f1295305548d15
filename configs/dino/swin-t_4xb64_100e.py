# DINO with Swin-T for 100 epochs at the batch the BC-SSL authors ran:
# 4 GPUs x 64 = 256 images per step (their launch script
# scripts/swin_tiny_100 in Shiweiliuiiiiiii/dino; the paper text says 512,
# configs/dino/swin-t_100e.py). DINO's linear scaling rule then gives
# lr = 0.0005 x 256 / 256 = 0.0005; everything else as swin-t_100e.py.
# tools/dist_train.sh <this> 4
_base_ = './swin-t_100e.py'

# optimizer: 4 GPUs x 64 = 256; lr = 0.0005 * 256 / 256
optim_wrapper = dict(optimizer=dict(lr=0.0005 * 256 / 256))

# runtime
auto_scale_lr = dict(base_batch_size=256)
