from .dino_teacher_hook import DINOTeacherHook

__all__ = ['DINOTeacherHook']
