# What a frozen backbone gives in a few minutes on one GPU: k-NN on
# ImageNet against the random-init baseline, k-NN on the robustness sets
# (a subset of each, scored against the same ImageNet train bank), params,
# FLOPs and throughput. No training.
#   python tools/run_suite.py configs/dino/bcssl-t_9x9_100e.py <ckpt> \
#       --suite configs/suites/quick.py \
#       --work-dir work_dirs/quick/bcssl-t_9x9_100e
evaluations = [
    dict(type='KNN', name='knn', data_root='data/imagenet'),
    dict(type='KNN', name='knn_random_init', data_root='data/imagenet',
         random_init=True),
    dict(type='Complexity', name='complexity'),
    dict(type='Throughput', name='throughput', batch_size=128, amp=True,
         channels_last=True),
]
