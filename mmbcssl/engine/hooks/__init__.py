from .dino_teacher_hook import DINOTeacherHook
from .knn_monitor_hook import KNNMonitorHook
from .rng_state_hook import RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook

__all__ = [
    'DINOTeacherHook', 'KNNMonitorHook', 'RNGStateHook', 'SafeCheckpointHook'
]
