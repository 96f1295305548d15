# ImageNet-C (Hendrycks & Dietterich, ICLR 2019): 15 benchmark corruptions x
# 5 severities of the 50,000 val images (224 x 224), in
# <root>/<corruption>/<severity>/<wnid>/ (or nested by category,
# <root>/<category>/<corruption>/<severity>/<wnid>/). One run evaluates all
# 75 (+ the 4 extra corruptions if present, reported apart) and reports
# per-corruption / per-severity error, mCE and relative mCE (AlexNet-
# normalised, x100) and the unnormalised mean error.
#   tools/test.py configs/robustness/imagenet-c.py <linear-probe ckpt>
#       [--model-from configs/linear/<model>.py]
#       [--cfg-options test_cfg.clean_error=0.25]  # for relative mCE
_base_ = './imagenet-r.py'
data_root = 'data/imagenet-c'

# dataset settings
# The images are already 224 x 224: centre crop only, as the benchmark's
# own evaluation does (no resize).
test_pipeline = [
    dict(type='LoadImageFromFileSafe', on_error='raise'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    dataset=dict(
        type='ImageNetC',
        data_root=data_root,
        corruption='gaussian_noise',  # set per pass by ImageNetCTestLoop
        severity=1,
        subset_classes=None,  # the wnid folders found (all 1000 normally)
        pipeline=test_pipeline))

# runtime
test_cfg = dict(
    type='ImageNetCTestLoop',
    clean_error=None,  # the probe's clean top-1 error in [0, 1], if known
    allow_partial=False)  # True: evaluate an incomplete tree, no mCE
