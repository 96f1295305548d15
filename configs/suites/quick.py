# What a frozen backbone gives in a few minutes on one GPU, no training:
# k-NN on ImageNet against the random-init baseline; k-NN of subsets of the
# robustness sets (5,000 images each; ImageNet-C: one corruption of each
# category at severity 3) against the same ImageNet train bank, the votes
# restricted to each set's classes; params, FLOPs and throughput.
#   python tools/run_suite.py configs/dino/bcssl-t_9x9_100e.py <ckpt> \
#       --suite configs/suites/quick.py \
#       --work-dir work_dirs/quick/bcssl-t_9x9_100e
evaluations = [
    dict(type='KNN', name='knn', data_root='data/imagenet'),
    dict(type='KNN', name='knn_random_init', data_root='data/imagenet',
         random_init=True),
    dict(type='KNNRobustness', name='knn_robustness',
         data_root='data/imagenet', max_queries=5000),
    dict(type='Complexity', name='complexity'),
    dict(type='Throughput', name='throughput', batch_size=128, amp=True,
         channels_last=True),
]
