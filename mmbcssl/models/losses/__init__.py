from .dino_loss import DINOLoss, teacher_temperature, update_center
from .esvit_loss import EsViTLoss

__all__ = ['DINOLoss', 'EsViTLoss', 'teacher_temperature', 'update_center']
