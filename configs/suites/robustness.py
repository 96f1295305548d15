# The robustness of a backbone through its linear probe (BC-SSL paper,
# arXiv 2312.05695, Table 5): the probe on the ImageNet val set (its error
# gives ImageNet-C's relative mCE), then ImageNet-C, -Sketch, -R and -A
# through that probe, in the protocol families of configs/robustness
# (official: IN-C centre crop, mCE, A/R restricted to their 200 classes;
# authors: the BC-SSL authors' script, IN-C resize 256 + crop 224, A/R
# 1000-way).
#   python tools/run_suite.py configs/dino/bcssl-t_9x9_100e.py <ckpt> \
#       --suite configs/suites/robustness.py \
#       --work-dir work_dirs/robustness/bcssl-t_9x9_100e
# tools/robustness_report.py runs this suite on a probe trained already
# (the LinearProbe's checkpoint=...), its sets, protocols, roots and
# classes taken from its command line.
evaluations = [
    dict(type='LinearProbe', name='linear'),
    dict(type='Robustness', name='robustness', sets=('c', 'sketch', 'r', 'a'),
         protocols=('official', 'authors')),
]
