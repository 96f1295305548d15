# The two control rows of `bash tools/demo.sh`: the demo suite's k-NN and
# linear probe (configs/suites/demo.py, the same settings) on a backbone
# that has learned nothing (the random initialisation of BC-SSL-T 9x9,
# seed 0) and on one trained with labels (the supervised ResNet-18,
# configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py). Beside the
# DINO teacher's row they show whether the suite ranks a learned backbone
# above an unlearned one. The probe keeps the teacher's 4 epochs so that
# the three linear numbers are one protocol; the demo's time goes mostly to
# starting each tool's process (train, test, best-epoch test), not to the
# epochs: the teacher's 4 probe epochs span about 17 s of the 67 s its
# probe took on an idle 2-core machine.
#   python tools/run_suite.py configs/dino/bcssl-t_9x9_100e_demo.py none \
#       --suite configs/suites/demo_control.py \
#       --work-dir work_dirs/demo/suite_random-init
#   python tools/run_suite.py \
#       configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py \
#       work_dirs/demo/supervised/epoch_8.pth \
#       --suite configs/suites/demo_control.py \
#       --work-dir work_dirs/demo/suite_supervised
_base_ = './demo.py'
evaluations = [{{_base_.knn}}, {{_base_.linear}}]
