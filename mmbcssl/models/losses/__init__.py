from .dino_loss import DINOLoss, teacher_temperature

__all__ = ['DINOLoss', 'teacher_temperature']
