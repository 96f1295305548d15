# The paper's tables for one backbone (arXiv 2312.05695: Table 5's k-NN,
# linear probe, robustness, params and FLOPs; Table 4's COCO Mask R-CNN),
# plus UperNet on ADE20K and inference throughput.
#   tools/dist_suite.sh configs/dino/bcssl-t_9x9_100e.py <checkpoint> 8 \
#       --suite configs/suites/paper.py \
#       --work-dir work_dirs/suite/bcssl-t_9x9_100e
# The downstream configs are those that start from the backbone's
# pre-training config in the metafiles (configs/*/metafile.yml).
evaluations = [
    dict(type='KNN', name='knn', data_root='data/imagenet'),
    dict(type='LinearProbe', name='linear'),
    # both protocol families: the official one, and the authors' (the
    # paper's numbers: IN-C resize 256 + crop 224, A/R 1000-way)
    dict(type='Robustness', name='robustness', sets=('c', 'sketch', 'r', 'a'),
         protocols=('official', 'authors')),
    dict(type='Complexity', name='complexity'),
    dict(type='Throughput', name='throughput', batch_size=128, amp=True,
         channels_last=True),
    dict(type='Finetune', name='mask_rcnn', task='mask_rcnn'),
    dict(type='Finetune', name='upernet', task='upernet'),
]
