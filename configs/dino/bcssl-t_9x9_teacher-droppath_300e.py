# BC-SSL-T 9x9, 300 epochs, with stochastic depth 0.1 active in the
# teacher, as the BC-SSL authors' code runs it (Shiweiliuiiiiiii/dino,
# main_dino.py builds the SLaK teacher with the student's drop_path_rate
# 0.1 and never switches it to eval mode). The paper text and DINO's
# teacher have none (configs/dino/bcssl-t_9x9_300e.py).
_base_ = './bcssl-t_9x9_300e.py'

# model settings
model = dict(teacher_drop_path=True)
