# ImageNet-1k train set with DINO's multi-crop augmentation: 2 global views
# (224 px, scale 0.4-1) + 8 local views (96 px, scale 0.05-0.4); the
# per-view probabilities are in mmbcssl/datasets/transforms/dino_multi_crop.py
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
train_pipeline = [
    # an unreadable image is an error naming the file; on_error='skip'
    # trains around it (counted and logged)
    dict(type='LoadImageFromFileSafe', on_error='raise'),
    dict(type='DINOMultiCrop', global_crop_size=224, local_crop_size=96,
         num_local_crops=8),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,  # per GPU
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
