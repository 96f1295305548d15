from .dino_teacher_hook import DINOTeacherHook
from .knn_monitor_hook import KNNMonitorHook

__all__ = ['DINOTeacherHook', 'KNNMonitorHook']
