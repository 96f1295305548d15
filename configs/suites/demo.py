# The suite on the built-in demo data (python tools/misc/make_demo_data.py),
# on CPU in minutes: what `bash tools/demo.sh` runs on the teacher of the
# demo DINO pre-training (configs/dino/bcssl-t_9x9_100e_demo.py). It shows
# that every evaluation runs end to end; its numbers are not results. The
# random initialisation and the supervised control are rows of their own
# (configs/suites/demo_control.py: this suite's k-NN and linear probe), so
# this suite runs no k-NN of the random initialisation: the random-init
# row's k-NN is that run (seed 0, these settings).
data_root = 'data/demo'
# demo images are 96 px: centre crops of 64 after a 73-px resize (the
# 224 / 256 ratio of the real protocol)
knn = dict(type='KNN', name='knn', data_root=f'{data_root}/imagenet',
           ks=(10, 20), img_size=64, resize=73, batch_size=64,
           num_workers=0)
# 4 of the probe config's 20 epochs (its cosine over 4, a checkpoint at the
# 4th), validated after each (the result has the last epoch's top-1 and
# the best epoch's)
linear = dict(type='LinearProbe', name='linear',
              data_root=f'{data_root}/imagenet', epochs=4,
              cfg_options=['train_dataloader.num_workers=0',
                           'val_dataloader.num_workers=0',
                           'test_dataloader.num_workers=0'])
evaluations = [
    knn,
    linear,
    # our protocol only (configs/suites/paper.py adds the authors')
    dict(type='Robustness', name='robustness', demo=True,
         sets=('c', 'sketch', 'r', 'a'), protocols=('official', ),
         roots=dict(c=f'{data_root}/imagenet-c',
                    sketch=f'{data_root}/imagenet-sketch',
                    r=f'{data_root}/imagenet-r', a=f'{data_root}/imagenet-a'),
         classes=f'{data_root}/imagenet/meta/classes.txt',
         cfg_options=['test_dataloader.num_workers=0']),
    dict(type='Transfer', name='transfer', registry='configs/transfer/demo.py',
         preset='demo4', img_size=64, resize=73, num_workers=0),
    dict(type='Complexity', name='complexity'),
    # a short Mask R-CNN: 3 epochs of the 48 demo training images (36
    # steps; the config's lr step at 16 of 20 epochs comes at 2, validation
    # and the checkpoint at 3) at the test scale and below (the config's
    # RandomChoiceResize without its largest scale), stem and stages 1-2
    # frozen (their backward pass is a third of a step on CPU), so it takes
    # under 2 minutes. It checks that fine-tuning, layer decay and COCO
    # evaluation run; AP stays near 0 at this length.
    dict(type='Finetune', name='mask_rcnn', task='mask_rcnn',
         data_root=f'{data_root}/coco', epochs=3,
         train_scales=[(320, 160), (320, 192)],
         cfg_options=['optim_wrapper.optimizer.lr=0.002',
                      'model.backbone.frozen_stages=2']),
]
