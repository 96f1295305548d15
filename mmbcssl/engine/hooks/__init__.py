from .dino_teacher_hook import DINOTeacherHook
from .knn_monitor_hook import KNNMonitorHook
from .rng_state_hook import RNGStateHook

__all__ = ['DINOTeacherHook', 'KNNMonitorHook', 'RNGStateHook']
